"""Devices for the transport tests: a real OpenSSH server on 127.0.0.1, and an emulated Raspberry Pi.

- `loopback_sshd` (fast path): this machine's sshd on a random port with a private host key, an
  authorized test key and a known_hosts file; the client side is one ssh config file (`-F`), so
  nothing touches ~/.ssh. The "device" Python is this venv's (ai_edge_litert).
- `emulated_pi`: the arm64 Debian bookworm image of `build_pi.py` (cached outside the clone), its
  arm64 sshd started in the chroot under qemu-user; the device Pythons are /opt/tflite/bin/python
  (tflite-runtime 2.14.0 + numpy<2) and /usr/bin/python3 (no runtime). When aarch64 emulation cannot
  be had here, the emulated tests fail with the reason under CI (CI=true) and skip with it elsewhere.

Both need root (sshd) and the OpenSSH server; `make test` installs the system packages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._bench_models import cached_digits_run
from tests.devices import build_pi

SSHD = "/usr/sbin/sshd"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    """Under CI a missing prerequisite is a failure with its reason; locally a skip with it."""
    if IN_CI:
        pytest.fail(f"emulated Pi unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"emulated Pi unavailable: {reason}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(timeout)
            if s.recv(64).startswith(b"SSH-"):  # the banner: sshd is up, not just the socket
                return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on port {port} within {timeout} s")


def write_client_config(path: Path, key: Path, known_hosts: Path, user: str = "root") -> Path:
    path.write_text(
        "Host *\n"
        f"  User {user}\n"
        f"  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  PasswordAuthentication no\n"
    )
    return path


@dataclass
class SshServer:
    """A running sshd and the client files that reach it."""

    port: int
    dir: Path
    ssh_config: Path
    known_hosts: Path
    host_key_pub: Path
    python: str  # the device Python with a TFLite runtime
    proc: subprocess.Popen
    bare_python: str | None = None  # a device Python without any TFLite runtime
    rootfs: Path | None = None  # the emulated Pi's image (None: this machine)
    extra: dict = field(default_factory=dict)

    def uri(self, python: str | None = None, tmpdir: str | None = None, user: str = "root") -> str:
        from urllib.parse import urlencode

        query = {"python": python or self.python}
        if tmpdir:
            query["tmpdir"] = tmpdir
        return f"ssh://{user}@127.0.0.1:{self.port}?{urlencode(query)}"

    def transport(self, python: str | None = None, tmpdir: str | None = None, ssh_config: Path | None = None,
                  **kw):
        from edgepool.bench.transports.ssh import SshTransport, parse_ssh_uri

        return SshTransport(parse_ssh_uri(self.uri(python, tmpdir)), ssh_config=ssh_config or self.ssh_config, **kw)

    def ssh(self, *remote: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the device (argument list, quoted for its shell)."""
        import shlex

        return subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-p", str(self.port),
                               "127.0.0.1", shlex.join(remote)], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def host_path(self, device_path: str) -> Path:
        """Where a path on the device is on this machine."""
        return Path(device_path) if self.rootfs is None else self.rootfs / device_path.lstrip("/")


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


def _need_sshd() -> None:
    if not Path(SSHD).is_file() or shutil.which("ssh") is None:
        pytest.fail("the OpenSSH server and client are needed: apt-get install openssh-server openssh-client "
                    "(make test installs them)", pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("starting sshd needs root")


@contextlib.contextmanager
def loopback_server(d: Path, python: str = sys.executable) -> Iterator[SshServer]:
    """Start this machine's sshd on 127.0.0.1:<random> with keys and client files in `d` (needs root)."""
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    _keygen(d / "host_key", "edgepool-test-host")
    _keygen(d / "user_key", "edgepool-test-user")
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPrintMotd no\n"
        "StrictModes no\n"  # the key files live under /tmp (world-writable, sticky), which StrictModes refuses
        f"PidFile {d / 'sshd.pid'}\nMaxStartups 50\nMaxSessions 50\n"
    )
    known = d / "known_hosts"
    kind, key = (d / "host_key.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{port} {kind} {key}\n")
    config = write_client_config(d / "ssh_config", d / "user_key", known)
    log = d / "sshd.log"
    with open(log, "wb") as lf:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=lf, stderr=lf,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc, 20, log)
        yield SshServer(port, d, config, known, d / "host_key.pub", python, proc)
    finally:
        _stop(proc)


@contextlib.contextmanager
def pi_server(image: build_pi.PiImage, d: Path) -> Iterator[SshServer]:
    """Start the emulated Pi's arm64 sshd (chroot, qemu-user) on 127.0.0.1:<random>; client files in `d`."""
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    port = free_port()
    known = d / "known_hosts"
    kind, key = image.host_key_pub.read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{port} {kind} {key}\n")
    config = write_client_config(d / "ssh_config", image.client_key, known)
    log = d / "sshd.log"
    (image.rootfs / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    argv = build_pi.in_chroot(image.rootfs, ["/usr/sbin/sshd", "-D", "-e", "-f", image.sshd_config, "-p", str(port),
                                             "-o", "ListenAddress=127.0.0.1"])
    with open(log, "wb") as lf:
        proc = subprocess.Popen(argv, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL, env=build_pi.CHROOT_ENV,
                                start_new_session=True)
    try:
        wait_for_port(port, proc, 90, log)
        yield SshServer(port, d, config, known, image.host_key_pub, image.runtime_python, proc,
                        bare_python=image.bare_python, rootfs=image.rootfs, extra={"image": image})
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def loopback_sshd(tmp_path_factory: pytest.TempPathFactory):
    """This machine's sshd on 127.0.0.1:<random>, logging in as root with a test key; device Python: this venv's."""
    _need_sshd()
    with loopback_server(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def pi_image() -> build_pi.PiImage:
    """The emulated Pi's image (built on first use, ~5-15 min; cached). Fails under CI, skips elsewhere, with the reason."""
    if shutil.which("ssh") is None or not Path(SSHD).is_file():
        _unavailable("the OpenSSH client and server are needed: apt-get install openssh-server openssh-client")
    if os.geteuid() != 0:
        _unavailable("building and starting the emulated Pi needs root")
    try:
        return build_pi.build(log=lambda m: print(m, file=sys.stderr, flush=True))
    except build_pi.PiUnavailable as e:
        _unavailable(str(e))
        raise  # not reached


@pytest.fixture(scope="session")
def emulated_pi(tmp_path_factory: pytest.TempPathFactory):
    """The arm64 sshd of the emulated Pi (qemu-user, chroot) on 127.0.0.1:<random>, logging in as root."""
    image = pi_image()
    with pi_server(image, tmp_path_factory.mktemp("pi")) as server:
        yield server


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found by /proc/<n>/stat's parent field)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def _stop(proc: subprocess.Popen) -> None:
    """Stop an sshd this fixture started and every session process it left (only this sshd's: another
    test session may run its own sshd in the same image)."""
    left = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def digits():
    return cached_digits_run()


@pytest.fixture
def device_tmp(tmp_path: Path) -> Path:
    """The loopback device's temp folder for one test; it must be empty when the test ends."""
    d = tmp_path / "device tmp $(touch pwned-tmp) 'q'"
    d.mkdir()
    yield d
    assert list(d.iterdir()) == [], "the private folder was left on the device"
