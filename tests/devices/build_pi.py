"""Build (once) and cache an emulated Raspberry Pi: an arm64 Debian bookworm userland run by qemu-user.

    python tests/devices/build_pi.py            # build if needed, print the image folder
    python tests/devices/build_pi.py --check    # only say whether aarch64 emulation works here

Raspberry Pi OS 12 is built on Debian bookworm (Python 3.11.2). The image holds what a Pi user has:
the system `python3` (no TFLite runtime: the missing-runtime case), a venv at /opt/tflite with the
real aarch64 wheels `tflite-runtime==2.14.0` and `numpy<2` (/opt/tflite/bin/python), and the arm64
OpenSSH server with a config for the tests and an authorized test key. The tests start that sshd
in the chroot (tests/devices/conftest.py) and reach it over 127.0.0.1: every instruction of the
agent and of sshd runs on the real aarch64 code under qemu-user.

Where: `${EDGEPOOL_PI_CACHE:-/var/cache/edgepool-pi}/<key>/` (outside the clone), where <key> is a
hash of the inputs written here (suite, packages, requirements, configs and the code of each build
phase): changing any of them builds a new image. Layout of an image folder::

    rootfs/            the arm64 userland (chroot)
    client_key(.pub)   the test user's key (authorized for root in the image)
    ready.json         written last: what was built, versions found inside, build seconds

Building needs root, `mmdebstrap`, `qemu-user-static` and a registered qemu-aarch64 binfmt handler
(`register_binfmt()` mounts binfmt_misc and registers it when it is missing). A file lock keeps two
processes from building at once; an interrupted build is finished by the next call (each phase has
a marker). The first build takes ~5 minutes (debootstrap of ~200 packages under emulation + pip).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
ARCH = "arm64"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ["python3", "python3-venv", "python3-pip", "ca-certificates", "openssh-server"]
VENV = "/opt/tflite"
REQUIREMENTS = ["tflite-runtime==2.14.0", "numpy<2"]
RUNTIME_PYTHON = f"{VENV}/bin/python"  # python with tflite-runtime + numpy
BARE_PYTHON = "/usr/bin/python3"  # the system python: no numpy, no TFLite runtime
SSHD_CONFIG = "/etc/ssh/edgepool_sshd_config"
HOST_KEY = "/etc/ssh/edgepool_host_ed25519_key"
# sshd in the image: keys only, no PAM (there is no login stack in a chroot), root may log in with a key.
SSHD_CONFIG_TEXT = f"""\
# edgepool test sshd (tests/devices/build_pi.py); started with -p PORT -o ListenAddress=127.0.0.1
HostKey {HOST_KEY}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PidFile none
Subsystem sftp /usr/lib/openssh/sftp-server
"""

DEFAULT_CACHE = "/var/cache/edgepool-pi"
QEMU = "/usr/bin/qemu-aarch64-static"
BINFMT_CONF = "/usr/lib/binfmt.d/qemu-aarch64.conf"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
HOST_PACKAGES = "qemu-user-static mmdebstrap"


class PiUnavailable(RuntimeError):
    """aarch64 emulation or the image cannot be had on this machine; the message says why."""


@dataclass(frozen=True)
class PiImage:
    dir: Path
    rootfs: Path
    client_key: Path
    host_key_pub: Path
    info: dict

    runtime_python = RUNTIME_PYTHON
    bare_python = BARE_PYTHON
    sshd_config = SSHD_CONFIG


def cache_root() -> Path:
    return Path(os.environ.get("EDGEPOOL_PI_CACHE") or DEFAULT_CACHE)


def image_key() -> str:
    """Hash of the image's inputs: the settings above and the source of every build phase (comments
    and docs elsewhere in this file do not count; a change to what is built does)."""
    import inspect

    inputs = [SUITE, ARCH, MIRROR, PACKAGES, VENV, REQUIREMENTS, SSHD_CONFIG, HOST_KEY, SSHD_CONFIG_TEXT,
              CHROOT_ENV, *(inspect.getsource(f) for f in (in_chroot, *(fn for _, fn in PHASES)))]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ binfmt
def register_binfmt() -> None:
    """Make the kernel run aarch64 ELF files with qemu-aarch64-static; raise PiUnavailable with the reason."""
    if not Path(QEMU).is_file() or not Path(BINFMT_CONF).is_file():
        raise PiUnavailable(f"{QEMU} is missing: apt-get install {HOST_PACKAGES}")
    entry = BINFMT_DIR / "qemu-aarch64"
    if not (BINFMT_DIR / "register").exists():
        if os.geteuid() != 0:
            raise PiUnavailable("binfmt_misc is not mounted and mounting it needs root")
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not (BINFMT_DIR / "register").exists():
            raise PiUnavailable(f"cannot mount binfmt_misc: {(proc.stderr or proc.stdout).strip() or 'no register file'}")
    if not entry.exists():
        line = next((x for x in Path(BINFMT_CONF).read_text().splitlines() if x.startswith(":")), "")
        try:
            (BINFMT_DIR / "register").write_text(line)
        except OSError as e:
            raise PiUnavailable(f"cannot register qemu-aarch64 with binfmt_misc: {e.strerror or e}") from None
    state = entry.read_text() if entry.exists() else ""
    if not state.startswith("enabled"):
        raise PiUnavailable(f"the qemu-aarch64 binfmt handler is not enabled ({state.splitlines()[:1]})")
    if "F" not in next((x.split()[1] for x in state.splitlines() if x.startswith("flags:")), "F"):
        raise PiUnavailable("the qemu-aarch64 binfmt handler lacks the F flag, so it cannot run inside a chroot")


# ------------------------------------------------------------------------------------------- build
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise PiUnavailable(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


def in_chroot(rootfs: Path, argv: list[str]) -> list[str]:
    """`argv` run inside the image with its own /proc (a private mount namespace: nothing to unmount)."""
    return ["unshare", "--mount", "--propagation", "private", f"--mount-proc={rootfs / 'proc'}",
            "chroot", str(rootfs), *argv]


CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
              "LANG": "C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180"}


def _phase_rootfs(d: Path, rootfs: Path) -> None:
    shutil.rmtree(rootfs, ignore_errors=True)
    _run(["mmdebstrap", "--quiet", f"--arch={ARCH}", "--variant=minbase", f"--include={','.join(PACKAGES)}",
          SUITE, str(rootfs), MIRROR], "mmdebstrap")


def _phase_venv(d: Path, rootfs: Path) -> None:
    # pip inside the image needs name resolution and, behind an inspecting proxy, the host's CA bundle
    shutil.copyfile("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
    cert = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    env = dict(CHROOT_ENV)
    if Path(cert).is_file():
        shutil.copyfile(cert, rootfs / "tmp" / "host-ca.crt")
        env["PIP_CERT"] = "/tmp/host-ca.crt"
    shutil.rmtree(rootfs / VENV.lstrip("/"), ignore_errors=True)
    _run(in_chroot(rootfs, [BARE_PYTHON, "-m", "venv", VENV]), "python3 -m venv (in the image)", env=env)
    _run(in_chroot(rootfs, [RUNTIME_PYTHON, "-m", "pip", "install", "--quiet", "--no-cache-dir", *REQUIREMENTS]),
         "pip install (in the image)", env=env)
    (rootfs / "tmp" / "host-ca.crt").unlink(missing_ok=True)


def _phase_ssh(d: Path, rootfs: Path) -> None:
    key = d / "client_key"
    for p in (key, key.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgepool-pi-test", "-f", str(key)], "ssh-keygen")
    host_key = rootfs / HOST_KEY.lstrip("/")
    for p in (host_key, Path(f"{host_key}.pub")):
        p.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgepool-pi", "-f", str(host_key)], "ssh-keygen")
    (rootfs / SSHD_CONFIG.lstrip("/")).write_text(SSHD_CONFIG_TEXT)
    ssh_dir = rootfs / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(key.with_suffix(".pub").read_text())
    auth.chmod(0o600)
    (rootfs / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd's privilege separation dir
    _run(in_chroot(rootfs, ["/usr/sbin/sshd", "-t", "-f", SSHD_CONFIG]), "sshd -t (in the image)", env=CHROOT_ENV)


PHASES = [("rootfs", _phase_rootfs), ("venv", _phase_venv), ("ssh", _phase_ssh)]

_PROBE = ("import json, platform, sys\n"
          "out = {'machine': platform.machine(), 'python': platform.python_version()}\n"
          "try:\n"
          "    import numpy, tflite_runtime\n"
          "    out.update(numpy=numpy.__version__, tflite_runtime=tflite_runtime.__version__)\n"
          "except ImportError as e:\n"
          "    out['import_error'] = str(e)\n"
          "print(json.dumps(out))\n")


def _inspect(rootfs: Path) -> dict:
    info = {}
    for name, py in (("runtime_python", RUNTIME_PYTHON), ("bare_python", BARE_PYTHON)):
        proc = _run(in_chroot(rootfs, [py, "-c", _PROBE]), f"{py} (in the image)", env=CHROOT_ENV)
        info[name] = {"path": py, **json.loads(proc.stdout.strip().splitlines()[-1])}
    rt = info["runtime_python"]
    if rt.get("machine") != "aarch64" or "tflite_runtime" not in rt:
        raise PiUnavailable(f"the image's {RUNTIME_PYTHON} is not an aarch64 Python with tflite-runtime: {rt}")
    if "import_error" not in info["bare_python"]:
        raise PiUnavailable(f"{BARE_PYTHON} in the image should have no numpy/TFLite runtime: {info['bare_python']}")
    return info


def _load(d: Path) -> PiImage | None:
    try:
        info = json.loads((d / "ready.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("key") != d.name or not (d / "rootfs" / RUNTIME_PYTHON.lstrip("/")).exists():
        return None
    return PiImage(d, d / "rootfs", d / "client_key", d / "rootfs" / f"{HOST_KEY.lstrip('/')}.pub", info)


def build(cache: Path | None = None, log=None) -> PiImage:
    """The image for this version of the file: from the cache, else built now (needs root). Raises PiUnavailable."""
    register_binfmt()
    key = image_key()
    d = (cache or cache_root()) / key
    ready = _load(d)
    if ready:
        return ready
    if os.geteuid() != 0:
        raise PiUnavailable("building the emulated Pi needs root (mmdebstrap, chroot)")
    for tool in ("mmdebstrap", "unshare", "chroot", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise PiUnavailable(f"{tool} is missing: apt-get install {HOST_PACKAGES} openssh-client")
    with _locked(d.parent / f".{key}.lock"):
        ready = _load(d)  # built by another process while this one waited
        if ready:
            return ready
        d.mkdir(parents=True, exist_ok=True)
        rootfs = d / "rootfs"
        t_all = time.monotonic()
        timings = {}
        for name, phase in PHASES:
            marker = d / f".done-{name}"
            if marker.exists():
                continue
            for later, _ in PHASES[[n for n, _ in PHASES].index(name):]:
                (d / f".done-{later}").unlink(missing_ok=True)
            if log:
                log(f"emulated Pi: {name} ...")
            t0 = time.monotonic()
            phase(d, rootfs)
            timings[name] = round(time.monotonic() - t0, 1)
            marker.touch()
        info = {"key": key, "suite": SUITE, "arch": ARCH, "packages": PACKAGES, "requirements": REQUIREMENTS,
                "build_seconds": timings, "build_total_seconds": round(time.monotonic() - t_all, 1),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **_inspect(rootfs)}
        tmp = d / "ready.json.tmp"
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, d / "ready.json")
    image = _load(d)
    assert image is not None
    return image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only register binfmt and check that aarch64 emulation works")
    ap.add_argument("--cache", type=Path, default=None, help=f"cache folder (default: $EDGEPOOL_PI_CACHE or {DEFAULT_CACHE})")
    args = ap.parse_args(argv)
    try:
        if args.check:
            register_binfmt()
            print("qemu-aarch64 binfmt handler: enabled")
            return 0
        image = build(args.cache, log=lambda m: print(m, file=sys.stderr, flush=True))
    except PiUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"dir": str(image.dir), "build_seconds": image.info.get("build_total_seconds"),
                      "runtime_python": image.info["runtime_python"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
