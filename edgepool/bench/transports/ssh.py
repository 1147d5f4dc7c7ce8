"""SSH transport: the agent runs on a Linux device (Raspberry Pi, Coral Dev Board, Jetson, any board with
sshd and Python 3.9+) reached with the system OpenSSH client.

    SshTransport("ssh://pi@raspberrypi.local?python=/home/pi/venv/bin/python").run(request)
    SshTransport.from_device(edgepool.devices.parse_device("pi5")).run(request)   # a registered device

The way fabric / ansible do it: the system `ssh` (so `~/.ssh/config`, ssh-agent and ProxyJump work),
`BatchMode=yes` (never a prompt), a connect timeout, keepalives (a dropped connection is noticed in
seconds), host-key checking as the user's configuration has it (an unknown key fails under BatchMode;
the error says the one command that fixes it). `$EDGEPOOL_SSH_CONFIG` names another config file (`-F`).
Commands are argument lists on this side (no local shell); the one command line the device's shell
sees is built with `shlex.quote`, and file names and paths travel as data over stdin, never as code.

One ssh connection per run. Its remote command is the device's Python running WRAPPER (below, stdlib
only): it reads a JSON header and the files (agent.py, the model, the test samples, the request) from
stdin into a private `mkdtemp` folder, runs `python agent.py request.json` there with the agent's
JSON lines going straight back over the connection, and removes the folder when the agent ends,
fails or is killed. Its stdin stays open as a control channel: `stop` forwards SIGINT (Ctrl-C here:
the agent reports the windows it finished), `kill` SIGKILL (timeout), and end-of-file (this side or
the connection gone) SIGINT, then SIGKILL after a grace period. If the wrapper cannot confirm that the
folder is gone, a second connection removes it (`rm -rf` of the quoted path), also after a timeout,
an error or Ctrl-C.

Binary mode (`benchmark_binary=`: LiteRT's static `benchmark_model`, for a board without Python or when the
user prefers it): no agent and no Python on the device. The one connection runs BINARY_SCRIPT under the
device's POSIX `sh`: it makes the private folder (`mktemp -d`), unpacks a tar stream of the model and the
binary from stdin (`tar x`: binary mode needs sh and tar there), runs the binary with `command_line`'s
arguments (under `taskset` when pinning is asked for and taskset exists), passes its output back, and removes
the folder when it ends, fails, or this side closes the connection (timeout, Ctrl-C: end-of-file on stdin
stops the binary). The output is parsed by `edgepool.bench.benchmark_model` into the agent's result fields.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DeviceError, InputError
from .. import benchmark_model as bm
from . import AGENT_FILES, AgentRun, stderr_tail

GRACE_S = 15.0  # how long an interrupted agent gets to send its result
MIN_PYTHON = (3, 9)
SSH_CONFIG_ENV = "EDGEPOOL_SSH_CONFIG"  # an ssh config file to use instead of ~/.ssh/config (ssh -F)
REMOTE_PREFIX = "edgepool-"  # the private folder's name on the device starts with this

# Runs on the device: stdlib only, and syntax that Python 2.7 and 3.x all parse, so an old interpreter
# gets the one "too old" line instead of a SyntaxError. Messages to the host are JSON lines with a
# "transport" key, written only while the agent is not running (before it starts and after it ended),
# so they never cut into one of its lines.
WRAPPER = r'''
import sys
sys.path = [p for p in sys.path if p]
import json, os, shutil, signal, subprocess, tempfile, threading, time
def say(obj):
    try:
        out = getattr(sys.stdout, "buffer", sys.stdout)
        out.write(((json.dumps(obj) if obj else "") + "\n").encode("utf-8"))
        out.flush()
    except (IOError, OSError, ValueError):
        pass
if sys.version_info < __MIN_PYTHON__:
    say({"transport": "error", "kind": "python", "version": ".".join(str(v) for v in sys.version_info[:3])})
    sys.exit(3)
inp = sys.stdin.buffer
head = json.loads(inp.readline().decode("utf-8"))
base = os.path.expanduser(head.get("tmpdir") or "") or tempfile.gettempdir()
try:
    d = tempfile.mkdtemp(prefix="__PREFIX__", dir=base)
except OSError as e:
    say({"transport": "error", "kind": "tmpdir", "path": base, "message": e.strerror or str(e)})
    sys.exit(3)
proc = None
code = 3
agent_s = None
try:
    need = sum(f["size"] for f in head["files"])
    try:
        for f in head["files"]:
            left = f["size"]
            with open(os.path.join(d, f["name"]), "wb") as fh:
                while left:
                    chunk = inp.read(min(left, 1 << 20))
                    if not chunk:
                        sys.exit(3)
                    fh.write(chunk)
                    left -= len(chunk)
    except OSError as e:
        try:
            free = shutil.disk_usage(d).free
        except OSError:
            free = None
        say({"transport": "error", "kind": "disk" if e.errno == 28 else "write", "path": d,
             "message": e.strerror or str(e), "needed_bytes": need, "free_bytes": free})
        sys.exit(3)
    say({"transport": "staged", "dir": d, "python": sys.executable, "pid": os.getpid()})
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "agent.py"] + head["args"], cwd=d, stdin=subprocess.DEVNULL)
    def signal_agent(sig):
        try:
            if proc.poll() is None:
                proc.send_signal(sig)
        except OSError:
            pass
    def control():
        for line in inp:
            cmd = line.strip()
            if cmd == b"stop":
                signal_agent(signal.SIGINT)
            elif cmd == b"kill":
                signal_agent(signal.SIGKILL)
        signal_agent(signal.SIGINT)
        timer = threading.Timer(__GRACE__, signal_agent, (signal.SIGKILL,))
        timer.daemon = True
        timer.start()
    watcher = threading.Thread(target=control)
    watcher.daemon = True
    watcher.start()
    while True:
        try:
            code = proc.wait()
            agent_s = time.monotonic() - started
            break
        except KeyboardInterrupt:
            signal_agent(signal.SIGINT)
finally:
    shutil.rmtree(d, ignore_errors=True)
    if proc is not None:
        say("")  # ends a line the agent may have left unfinished when it died
    say({"transport": "exit", "returncode": code if proc is not None else None, "removed": not os.path.exists(d),
         "agent_s": agent_s})
# os._exit: the control thread may still be blocked reading stdin, which an orderly shutdown would wait for
os._exit(code if code >= 0 else 128 - code)
'''.replace("__MIN_PYTHON__", repr(MIN_PYTHON)).replace("__PREFIX__", REMOTE_PREFIX).replace("__GRACE__", repr(GRACE_S))


# Binary mode: runs under the device's POSIX sh (no Python there). $1: where to make the private folder ("": $TMPDIR
# or /tmp), $2: the CPU mask for taskset ("": no pinning), the rest: benchmark_model's argument list, relative to
# the folder. stdin: a tar stream of the model and the binary, then kept open until this side is done; its
# end-of-file (this side closed it, or the connection is gone) stops the binary. Lines starting with "@edgepool "
# are the script's; everything else is the binary's output (stdout and stderr).
BINARY_SCRIPT = r"""
base=${1:-${TMPDIR:-/tmp}}
mask=$2
shift 2
say() { printf '@edgepool %s\n' "$*"; }
case $base in "~") base=$HOME ;; "~/"*) base=$HOME/${base#"~/"} ;; esac
command -v tar >/dev/null 2>&1 || { say "error notar"; exit 3; }
d=$(mktemp -d "$base/__PREFIX__XXXXXXXX" 2>/dev/null) || d=
if [ -z "$d" ]; then
  d=$base/__PREFIX__$$
  mkdir -m 700 "$d" 2>/dev/null || { say "error tmpdir"; exit 3; }
fi
trap 'rm -rf "$d"' EXIT
trap 'rm -rf "$d"; exit 129' HUP
trap 'rm -rf "$d"; exit 130' INT
trap 'rm -rf "$d"; exit 143' TERM
say "staged $d"
say "cpus $(getconf _NPROCESSORS_ONLN 2>/dev/null)"
say "cpu $(awk -F': *' '/^(model name|Model|Hardware)[ \t]*:/ {print $2; exit}' /proc/cpuinfo 2>/dev/null)"
say "uname $(uname -srm 2>/dev/null)"
(cd "$d" && tar xf -) || { say "error untar"; exit 3; }
cd "$d" || exit 3
chmod 755 ./__BINARY__ || { say "error chmod"; exit 3; }
if [ -n "$mask" ]; then
  if command -v taskset >/dev/null 2>&1; then set -- taskset "$mask" "$@"; say "pinned $mask"; else say "unpinned"; fi
fi
exec 3<&0
"$@" </dev/null 2>&1 &
pid=$!
{ cat <&3; kill -TERM "$pid"; sleep __GRACE__; kill -KILL "$pid"; } >/dev/null 2>&1 &
w=$!
exec 3<&-
wait "$pid"
rc=$?
kill "$w" 2>/dev/null
cd / && rm -rf "$d"
echo
if [ -e "$d" ]; then say "exit $rc kept"; else say "exit $rc removed"; fi
""".replace("__PREFIX__", REMOTE_PREFIX).replace("__GRACE__", str(int(GRACE_S // 3))).replace("__BINARY__", "benchmark_model")
BINARY_NAME = "benchmark_model"  # the binary's name in the private folder


@dataclass(frozen=True)
class SshTarget:
    """A device reached over ssh. `user`/`port` None: as the ssh configuration says. `python`: the device's
    interpreter that runs the agent; `tmpdir`: where the private folder is made (None: the device's default)."""

    user: str | None
    host: str
    port: int | None = None
    python: str = "python3"
    tmpdir: str | None = None

    @property
    def display(self) -> str:
        """user@host:port as given (what the user typed, without the query)."""
        who = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{who}{host}" + (f":{self.port}" if self.port else "")

    @property
    def uri(self) -> str:
        return f"ssh://{self.display}"

    @classmethod
    def from_ref(cls, ref: Any, python: str | None = None) -> SshTarget:
        """From a parsed or registered device (`edgepool.devices.DeviceRef`: user, host, port, python, tmpdir);
        `python` overrides the device's interpreter."""
        return cls(ref.user, ref.host, ref.port, python or getattr(ref, "python", None) or "python3",
                   getattr(ref, "tmpdir", None))


def parse_ssh_uri(uri: str) -> SshTarget:
    """`ssh://[user@]host[:port][?python=/path][&tmpdir=/path]` -> SshTarget; InputError naming what is wrong.

    A thin call: `edgepool.devices.parse_ssh_uri` is the one parser. `host` may be an alias from ~/.ssh/config
    (its HostName, User, Port and ProxyJump then apply)."""
    from ... import devices

    return SshTarget.from_ref(devices.parse_ssh_uri(uri))


@dataclass
class SshRun(AgentRun):
    """An AgentRun plus what the transport saw: `stopped` is its account of an end the agent could not
    report (the connection lost, a timeout), `remote_dir` the private folder and whether it is gone."""

    stopped: str | None = None
    remote_dir: str | None = None
    remote_dir_removed: bool = False
    agent_seconds: float | None = None  # the agent process's wall time on the device (start to exit)


class SshTransport:
    name = "ssh"

    def __init__(self, target: SshTarget | str, timeout_s: float | None = None, connect_timeout_s: float = 10,
                 ssh_config: Path | str | None = None, ssh_options: list[str] | tuple[str, ...] = (),
                 ssh: str = "ssh", benchmark_binary: Path | str | None = None) -> None:
        self.target = parse_ssh_uri(target) if isinstance(target, str) else target
        # LiteRT's benchmark_model (a host file): set, `run` measures with it instead of the agent (binary mode)
        self.benchmark_binary = Path(benchmark_binary).expanduser() if benchmark_binary else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        ssh_config = ssh_config or os.environ.get(SSH_CONFIG_ENV) or None
        self.ssh_config = Path(ssh_config) if ssh_config else None
        self.ssh_options = list(ssh_options)
        self.ssh = ssh
        self._stop = threading.Event()
        self._current: _Session | None = None  # the connection running the agent, while it runs

    def interrupt(self) -> None:
        """Stop the agent, from any thread (the multi-device runner's Ctrl-C): `stop` on the control channel (the
        agent reports the windows it finished; the wrapper removes its folder), or the connection closed when the
        upload is unfinished. `run` then returns an AgentRun with
        `interrupted` set; so does every later run (the runner makes its transports per benchmark)."""
        self._stop.set()
        s = self._current
        if s is not None:
            s.stop()

    @classmethod
    def from_device(cls, ref: Any, **kw: Any) -> SshTransport:
        """From a parsed or registered device (`edgepool.devices.DeviceRef`: user, host, port, python, tmpdir)."""
        return cls(SshTarget.from_ref(ref), **kw)

    # ------------------------------------------------------------------------------------ commands
    def _base(self) -> list[str]:
        t = self.target
        argv = [self.ssh]
        if self.ssh_config:
            argv += ["-F", str(self.ssh_config)]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(self.connect_timeout_s))}",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
                 *self.ssh_options]
        if t.port:
            argv += ["-p", str(t.port)]
        if t.user:
            argv += ["-l", t.user]
        return argv

    def command(self, *remote: str) -> list[str]:
        """The ssh argv that runs `remote` (one argument list) on the device, quoted for its shell."""
        return [*self._base(), "--", self.target.host, shlex.join(remote)]

    # ---------------------------------------------------------------------------------------- run
    def run(self, request: dict[str, Any], on_event: Any = None) -> SshRun:
        """Like LocalTransport.run: stage, run the agent on the device, stream its events, clean up.
        With a benchmark binary: `run_binary`."""
        if self.benchmark_binary is not None:
            return self.run_binary(request, on_event)
        req = json.loads(json.dumps(request))
        files: list[tuple[str, Path | bytes]] = [*AGENT_FILES, ("model.tflite", Path(req["model_path"]))]
        req["model_path"] = "model.tflite"  # relative to the private folder, the agent's working directory
        inputs = req.get("inputs") or {}
        if inputs.get("samples_path"):
            files.append(("test.npz", Path(inputs["samples_path"])))
            inputs["samples_path"] = "test.npz"
        files.append(("request.json", json.dumps(req).encode()))
        return self._session(files, ["request.json"], on_event)

    def probe(self) -> dict[str, Any]:
        """What the device offers (agent.py --probe, run in a private folder there): machine, Python, numpy,
        TFLite runtimes, Edge TPU, CPU, governor, temperatures, free disk, emulation. DeviceError if unreachable."""
        run = self._session(list(AGENT_FILES), ["--probe"], None)
        found = next((ev for ev in run.events if ev.get("event") == "probe"), None)
        if found is None:
            tail = run.stderr_tail.splitlines()[-1] if run.stderr_tail else f"exit code {run.returncode}"
            raise DeviceError(f"probing {self.target.display} failed: {tail}",
                              f"run {self.target.python} on the device by hand to see why")
        info = {k: v for k, v in found.items() if k != "event"}
        info["device"] = self.target.uri
        info["remote_dir_removed"] = run.remote_dir_removed
        return info

    def _session(self, files: list[tuple[str, Path | bytes]], args: list[str], on_event: Any) -> SshRun:
        sizes = []
        for _, src in files:
            try:
                sizes.append(len(src) if isinstance(src, bytes) else src.stat().st_size)
            except OSError as e:
                raise InputError(f"cannot read {src}: {e.strerror or e}", "check the path") from None
        header = {"tmpdir": self.target.tmpdir, "args": args,
                  "files": [{"name": n, "size": s} for (n, _), s in zip(files, sizes, strict=True)]}
        out = SshRun()
        argv = self.command(self.target.python, "-E", "-c", WRAPPER)
        with tempfile.TemporaryDirectory(prefix="edgepool-ssh-") as tmp:
            err_path = Path(tmp) / "stderr.txt"
            with open(err_path, "wb") as err:
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                            start_new_session=True)
                except OSError as e:
                    raise DeviceError(f"cannot run {self.ssh}: {e.strerror or e}",
                                      "install the OpenSSH client (apt install openssh-client)") from None
                s = _Session(proc, header, files)
                self._current = s
                if self._stop.is_set():
                    s.stop()
                timer = None
                if self.timeout_s:
                    timer = threading.Timer(self.timeout_s, s.timeout)
                    timer.daemon = True
                    timer.start()
                try:
                    s.start_upload()
                    try:
                        s.read(out, on_event)
                    except KeyboardInterrupt:
                        out.interrupted = True
                        s.interrupt_and_drain(out)
                    if self._stop.is_set():
                        out.interrupted = True
                    proc.wait()
                finally:
                    self._current = None
                    if timer is not None:
                        timer.cancel()
                    s.finish()
                    out.remote_dir = s.dir
                    out.remote_dir_removed = bool(s.exit and s.exit.get("removed"))
                    if s.dir and not out.remote_dir_removed:
                        out.remote_dir_removed = self._remove(s.dir)
            out.stderr_tail = stderr_tail(err_path)
        return self._conclude(out, s, proc.returncode)

    # ------------------------------------------------------------------------------- binary mode
    def check_ready(self) -> None:
        """What can be checked without the device (binary mode): the benchmark binary is a readable file."""
        if self.benchmark_binary is not None and not self.benchmark_binary.is_file():
            raise InputError(f"benchmark_model binary {self.benchmark_binary} does not exist",
                             "give the path of LiteRT's benchmark_model built for the board (e.g. linux_aarch64)")

    def run_binary(self, request: dict[str, Any], on_event: Any = None) -> SshRun:
        """Measure `request["model_path"]` with LiteRT's benchmark_model on the device (binary mode, no Python
        there): one connection uploads the model and the binary into a private folder, runs it, and removes the
        folder (also after a failure, a timeout or Ctrl-C). An SshRun whose `result` has the agent's result
        fields (`bm.result_record`); a model the binary cannot run comes back as its `error`. A DeviceError
        when nothing ran (unreachable, no tar, no space, a timeout)."""
        emit = on_event or (lambda ev: None)
        self.check_ready()
        binary = self.benchmark_binary
        assert binary is not None
        model = Path(request["model_path"])
        if not model.is_file():
            raise InputError(f"{model} does not exist", "benchmark a .tflite file (benchmark_model runs TFLite models)")
        delegates = _delegate_names(request)
        affinity = [int(c) for c in request.get("affinity") or []]
        mask = f"{sum(1 << c for c in affinity):x}" if affinity else ""
        name = model.name if model.name not in ("", BINARY_NAME) else "model.tflite"
        windows = max(1, int(request.get("windows") or 1))
        num_runs = int(request.get("runs") or 50) * windows
        argv = bm.command_line(
            f"./{BINARY_NAME}", name, threads=request.get("threads"), delegates=delegates,
            warmup_runs=int(request.get("warmup_runs", 1)), warmup_min_seconds=float(request.get("warmup_min_seconds", 0.5)),
            runs=num_runs, min_seconds=float(request.get("min_seconds", 1.0)) * windows,
            max_seconds=float(request.get("max_seconds") or 150.0), run_delay_s=float(request.get("run_delay_s") or 0.0),
        )
        argv[1] = f"--graph=./{name}" if name.startswith("-") else argv[1]
        files = [(name, model, 0o644), (BINARY_NAME, binary, 0o755)]
        remote = ["sh", "-c", BINARY_SCRIPT, "edgepool-benchmark", self.target.tmpdir or "", mask, *argv]
        out = SshRun()
        s = _BinarySession(self.command(*remote), files)
        emit({"event": "progress", "phase": "upload", "done": 0, "total": 1})
        with tempfile.TemporaryDirectory(prefix="edgepool-ssh-") as tmp:
            err_path = Path(tmp) / "stderr.txt"
            with open(err_path, "wb") as err:
                s.start(err, self.ssh)
                self._current = s  # type: ignore[assignment]
                if self._stop.is_set():
                    s.stop()
                timer = threading.Timer(self._binary_timeout(request), s.timeout)
                timer.daemon = True
                timer.start()
                try:
                    try:
                        s.read(emit, self)
                    except KeyboardInterrupt:
                        out.interrupted = True
                        s.stop()
                        with contextlib.suppress(KeyboardInterrupt):
                            s.read(None, self)
                    if self._stop.is_set():
                        out.interrupted = True
                finally:
                    self._current = None
                    timer.cancel()
                    s.finish()
                    out.remote_dir = s.dir
                    out.remote_dir_removed = bool(s.removed)
                    if s.dir and not out.remote_dir_removed:
                        out.remote_dir_removed = self._remove(s.dir)
            out.stderr_tail = stderr_tail(err_path)
        return self._binary_conclusion(out, s, request, model, binary, delegates, affinity, num_runs, emit)

    def _nothing_staged(self, out: SshRun, s: Any, ssh_rc: int | None) -> SshRun:
        """The run ended before a private dir existed on the device: interrupted, timed out, or ssh failed."""
        if out.interrupted:
            out.returncode = ssh_rc
            return out
        if s.timed_out:
            raise DeviceError(f"{self.target.display} did not answer within {self.timeout_s:g} s",
                              "check the device and the network, or allow more time")
        raise self.connection_error(ssh_rc, out.stderr_tail)

    def _binary_timeout(self, request: dict[str, Any]) -> float:
        """The given timeout, else twice the binary's own --max_secs plus time for the upload (as adb does)."""
        if self.timeout_s:
            return float(self.timeout_s)
        return 2.0 * float(request.get("max_seconds") or 150.0) + 300.0

    def _binary_conclusion(self, out: SshRun, s: _BinarySession, request: dict[str, Any], model: Path, binary: Path,
                           delegates: list[str], affinity: list[int], num_runs: int, emit: Any) -> SshRun:
        t = self.target
        ssh_rc = s.proc.returncode if s.proc is not None else None
        if s.error is not None and not out.interrupted:
            raise self._binary_setup_error(s.error, out.stderr_tail)
        if s.dir is None:
            if ssh_rc in (126, 127) and "sh" in (out.stderr_tail or "").lower() and not out.interrupted and not s.timed_out:
                raise DeviceError(f"{t.display} has no POSIX sh to run benchmark_model",
                                  "binary mode needs sh and tar on the device")
            return self._nothing_staged(out, s, ssh_rc)
        out.returncode = s.returncode if s.returncode is not None else ssh_rc
        leftover = "" if out.remote_dir_removed else f"; remove {out.remote_dir} there"
        if out.interrupted:
            return out
        if s.timed_out:
            raise DeviceError(f"{t.display}: benchmark_model did not finish within {self._binary_timeout(request):g} s; "
                              "it was stopped",
                              "allow more time (--timeout), or fewer runs" + leftover)
        if s.returncode is None:
            raise DeviceError(f"{t.display}: connection lost while benchmark_model ran "
                              f"({_last_line(out.stderr_tail) or f'ssh exit code {ssh_rc}'})",
                              "check the device and the network, then run again" + leftover)
        text = s.text()
        out.stderr_tail = "\n".join([x for x in text.strip().splitlines() if x.strip()][-20:])
        parsed = bm.parse_benchmark_model(text)
        if parsed["failed"] or s.returncode != 0:
            out.error = _binary_failure(parsed, s.returncode, text, t.display)
            out.events.append(out.error)
            emit(out.error)
            return out
        env: dict[str, Any] = {"transport": self.name, "device": t.uri, "cpu_model": s.cpu_model,
                               "cpu_count": s.cpu_count, "affinity": affinity or None,
                               "pinned": s.pinned, "benchmark_binary": str(binary), "remote_dir_removed":
                               out.remote_dir_removed}
        if s.uname:
            parts = s.uname.split()
            env["os"] = " ".join(parts[:2]) or None
            env["machine"] = parts[-1] if len(parts) >= 3 else None
        version = _binary_version(text)
        out.result = bm.result_record(parsed, transport=self.name, model_size_bytes=model.stat().st_size,
                                      threads=request.get("threads"), delegates=delegates, requested_runs=num_runs,
                                      environment=env, runtime_version=version)
        out.result["benchmark_binary"] = str(binary)
        if affinity and s.pinned is False:
            out.result["notes"].append("taskset is not installed on the device: the binary ran unpinned")
        out.events.append(out.result)
        emit(out.result)
        return out

    def _binary_setup_error(self, kind: str, stderr: str) -> DeviceError:
        t = self.target
        where = t.tmpdir or "its temp folder"
        if kind == "notar":
            return DeviceError(f"{t.display} has no tar: benchmark_model cannot be copied there without Python",
                               "install tar on the device (binary mode needs a POSIX sh and tar)")
        if kind == "tmpdir":
            return DeviceError(f"cannot create a private folder in {where} on {t.display}",
                               "name a writable folder in the device URI: ?tmpdir=/path")
        last = _last_line(stderr)
        if "no space" in last.lower():
            return DeviceError(f"no space left on {t.display} in {where} for the model and benchmark_model",
                               "free some space there, or name another folder in the device URI: ?tmpdir=/path")
        return DeviceError(f"cannot copy benchmark_model to {t.display}: {last or kind}",
                           "check the device's temp folder (permissions, read-only file system)")

    def _remove(self, remote_dir: str) -> bool:
        """Second connection: `rm -rf` the private folder (only a folder the wrapper made)."""
        if not remote_dir.startswith("/") or not os.path.basename(remote_dir).startswith(REMOTE_PREFIX):
            return False
        try:
            proc = subprocess.run(self.command("rm", "-rf", "--", remote_dir), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=self.connect_timeout_s + 20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0

    # --------------------------------------------------------------------------------- conclusions
    def _conclude(self, out: SshRun, s: _Session, ssh_rc: int | None) -> SshRun:
        """Turn what ssh and the wrapper said into the AgentRun, or one DeviceError when nothing ran."""
        t = self.target
        stderr = out.stderr_tail
        if s.error is not None:
            raise self._wrapper_error(s.error)
        if s.dir is None:  # nothing was staged: ssh, the shell or the Python failed first
            return self._nothing_staged(out, s, ssh_rc)
        if out.error is not None and out.error.get("kind") == "device":
            out.error["message"] = f"{out.error.get('message', 'the agent failed')} (on {t.display})"
        if s.exit is not None:
            out.returncode = s.exit.get("returncode")
            out.agent_seconds = s.exit.get("agent_s")
        else:
            out.returncode = ssh_rc
        if out.result is not None or out.error is not None or out.interrupted:
            return out
        if s.timed_out:
            out.stopped = f"timeout: stopped after {self.timeout_s:g} s"
        elif s.exit is None:
            out.stopped = f"connection lost: {_last_line(stderr) or f'ssh exit code {ssh_rc}'}"
        if out.stopped and not out.windows:
            raise DeviceError(f"{t.display}: {out.stopped}, before a timed window finished",
                              "check the device and the network, then run again"
                              + ("" if out.remote_dir_removed else f"; remove {out.remote_dir} there"))
        return out

    def _wrapper_error(self, e: dict[str, Any]) -> DeviceError:
        t = self.target
        kind = e.get("kind")
        if kind == "python":
            return DeviceError(f"{t.python} on {t.display} is Python {e.get('version')}; the agent needs Python "
                               f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer",
                               "install python3 there, or name a newer one in the device URI: ?python=/path/to/python3")
        if kind == "disk":
            return DeviceError(f"no space left on {t.display} in {os.path.dirname(e.get('path') or '') or 'its temp folder'}: "
                               f"the agent and model need {_mb(e.get('needed_bytes'))}, {_mb(e.get('free_bytes'))} free",
                               "free some space there, or name another folder in the device URI: ?tmpdir=/path")
        if kind == "tmpdir":
            return DeviceError(f"cannot create a private folder in {e.get('path')} on {t.display}: {e.get('message')}",
                               "name a writable folder in the device URI: ?tmpdir=/path")
        return DeviceError(f"cannot copy the agent to {t.display}: {e.get('message')}",
                           "check the device's temp folder (permissions, read-only file system)")

    def _resolved(self) -> dict[str, str]:
        """The ssh configuration for this host as ssh resolves it (`ssh -G`): hostname, port, user, known hosts."""
        try:
            proc = subprocess.run([*self._base(), "-G", "--", self.target.host], capture_output=True, text=True,
                                  timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        conf: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(" ")
            conf.setdefault(key.lower(), value.strip())
        return conf

    def connection_error(self, rc: int | None, stderr: str) -> DeviceError:
        """One clear DeviceError for an ssh that ended before the agent was staged."""
        t = self.target
        conf = self._resolved()
        host = conf.get("hostname") or t.host
        port = conf.get("port") or str(t.port or 22)
        user = conf.get("user") or t.user or ""
        where = f"{host}:{port}"
        login = f"ssh -p {port} {shlex.quote(f'{user}@{host}' if user else host)}"
        known = (conf.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
        known = known if known.startswith("~") else shlex.quote(known)
        text = stderr or ""
        low = text.lower()
        if "remote host identification has changed" in low:
            return DeviceError(f"the host key of {where} changed since it was recorded: ssh refused to connect",
                               f"if the device was reinstalled, check the new key, then: ssh-keygen -R "
                               f"{shlex.quote(f'[{host}]:{port}' if port != '22' else host)} -f {known}")
        if "host key verification failed" in low or "host key is known" in low:
            return DeviceError(f"the host key of {where} is not known: ssh host key verification failed",
                               f"check the key and add it: ssh-keyscan -p {port} {shlex.quote(host)} >> {known} "
                               f"(or log in once with {login} and accept it)")
        if "permission denied" in low and (rc == 255 or "publickey" in low):
            return DeviceError(f"{user + '@' if user else ''}{where} refused the login: permission denied",
                               "load your key into ssh-agent (ssh-add) or set IdentityFile for this host in "
                               "~/.ssh/config; its public key must be in ~/.ssh/authorized_keys on the device")
        if "could not resolve hostname" in low:
            return DeviceError(f"cannot resolve the host name {host!r}", "check the name, or use the device's IP address")
        for pattern, why in (("connection refused", "connection refused"), ("timed out", "connection timed out"),
                             ("no route to host", "no route to host"), ("network is unreachable", "network is unreachable"),
                             ("connection reset", "connection reset"), ("connection closed", "connection closed")):
            if pattern in low:
                return DeviceError(f"{where} is unreachable: {why}",
                                   f"check that the device is on and runs sshd on port {port}; {login} must log in "
                                   "without a prompt")
        if rc in (126, 127) and ("not found" in low or "no such file" in low or "permission denied" in low):
            return DeviceError(f"no python3 at {t.python} on {t.display}",
                               "install python3 there (apt install python3), or name its Python in the device URI: "
                               "?python=/path/to/python3")
        if "unknown option" in low or "syntaxerror" in low:
            return DeviceError(f"{t.python} on {t.display} cannot run the agent (Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ needed)",
                               "name a Python 3 in the device URI: ?python=/path/to/python3")
        return DeviceError(f"ssh to {where} failed ({_last_line(text) or f'exit code {rc}'})",
                           f"try {login} by hand")


class _Session:
    """One ssh connection running WRAPPER: the upload thread, the control channel and what the wrapper said."""

    def __init__(self, proc: subprocess.Popen, header: dict[str, Any], files: list[tuple[str, Path | bytes]]) -> None:
        self.proc = proc
        self.header = header
        self.files = files
        self.uploaded = threading.Event()
        self.lock = threading.Lock()
        self.dir: str | None = None
        self.exit: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.timed_out = False
        self._kill_timer: threading.Timer | None = None

    def start_upload(self) -> None:
        t = threading.Thread(target=self._upload, daemon=True)
        t.start()

    def _upload(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(self.header).encode() + b"\n")
            for (_, src), meta in zip(self.files, self.header["files"], strict=True):
                if isinstance(src, bytes):
                    stdin.write(src)
                    continue
                left = meta["size"]
                with open(src, "rb") as f:
                    while left:
                        chunk = f.read(min(left, 1 << 20))
                        if not chunk:
                            raise OSError(f"{src} shrank while it was copied")
                        stdin.write(chunk)
                        left -= len(chunk)
            stdin.flush()
            self.uploaded.set()
        except (OSError, ValueError):
            self.kill_ssh()  # the remote side went away, or the file changed: the wrapper removes its folder

    def send(self, command: bytes) -> bool:
        """A control line to the wrapper; False if it cannot be sent (upload unfinished, connection gone)."""
        if not self.uploaded.is_set():
            return False
        with self.lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(command + b"\n")
                self.proc.stdin.flush()
                return True
            except (OSError, ValueError):
                return False

    def kill_ssh(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            self.proc.kill()

    def _kill_later(self) -> None:
        with self.lock:
            if self._kill_timer is not None:
                return
            self._kill_timer = threading.Timer(GRACE_S, self.kill_ssh)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def timeout(self) -> None:
        """Timer thread: kill the agent (the wrapper then removes the folder), or the connection if no agent runs."""
        self.timed_out = True
        if not self.send(b"kill"):
            self.kill_ssh()
        self._kill_later()

    def read(self, out: AgentRun, on_event: Any) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        for line in iter(stdout.readline, b""):
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a login banner or a line cut by a dropped connection
            if not isinstance(ev, dict):
                continue
            if "transport" in ev:
                kind = ev["transport"]
                if kind == "staged":
                    self.dir = str(ev.get("dir"))
                elif kind == "exit":
                    self.exit = ev
                elif kind == "error":
                    self.error = ev
                continue
            out.take(ev, on_event)

    def stop(self) -> None:
        """Ask the agent to stop (SIGINT there), or close the connection when no agent runs yet; kill the
        connection after GRACE_S. Safe from any thread."""
        if not self.send(b"stop"):
            self.kill_ssh()
        self._kill_later()

    def interrupt_and_drain(self, out: AgentRun) -> None:
        """Ctrl-C: ask the agent to stop (SIGINT there), then collect what it still sends (bounded by GRACE_S)."""
        self.stop()
        try:
            self.read(out, None)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            self.kill_ssh()

    def finish(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        if self.proc.poll() is None:
            self.kill_ssh()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()


class _BinarySession:
    """One ssh connection running BINARY_SCRIPT: the tar upload, the binary's output and what the script said."""

    def __init__(self, argv: list[str], files: list[tuple[str, Path, int]]) -> None:
        self.argv = argv
        self.files = files
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.lines: list[str] = []
        self.dir: str | None = None
        self.uname: str | None = None
        self.cpu_count: int | None = None
        self.cpu_model: str | None = None
        self.pinned: bool | None = None
        self.error: str | None = None
        self.returncode: int | None = None
        self.removed = False
        self.timed_out = False
        self._kill_timer: threading.Timer | None = None

    def start(self, err: Any, ssh: str) -> None:
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        except OSError as e:
            raise DeviceError(f"cannot run {ssh}: {e.strerror or e}",
                              "install the OpenSSH client (apt install openssh-client)") from None
        threading.Thread(target=self._upload, daemon=True).start()

    def _upload(self) -> None:
        """A tar stream of the files on stdin; stdin then stays open (its end stops the binary)."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            with tarfile.open(fileobj=self.proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, src, mode in self.files:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = src.stat().st_size, mode, int(time.time())
                    with open(src, "rb") as f:
                        tar.addfile(info, f)
            self.proc.stdin.flush()
        except (OSError, ValueError, tarfile.TarError):
            self.close_stdin()  # the remote side went away, or this side stopped it

    def read(self, emit: Any, transport: SshTransport) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.startswith("@edgepool "):
                self.lines.append(line)
                continue
            word, _, rest = line[len("@edgepool "):].partition(" ")
            if word == "staged":
                self.dir = rest
            elif word == "cpus":
                with contextlib.suppress(ValueError):
                    self.cpu_count = int(rest.strip())
            elif word == "cpu":
                self.cpu_model = rest.strip() or None
            elif word == "uname":
                self.uname = rest.strip() or None
                if emit is not None:
                    emit({"event": "progress", "phase": "upload", "done": 1, "total": 1})
                    emit({"event": "hello", "runtime": bm.TOOL, "runtime_version": None, "transport": transport.name,
                          "device": transport.target.uri, "protocol": 1})
            elif word in ("pinned", "unpinned"):
                self.pinned = word == "pinned"
            elif word == "error":
                self.error = rest.strip() or "unknown"
            elif word == "exit":
                code, _, state = rest.partition(" ")
                with contextlib.suppress(ValueError):
                    self.returncode = int(code)
                self.removed = state.strip() == "removed"
                self.close_stdin()  # done: lets the script's stdin watcher end
                return  # nothing follows (a process the binary left behind may keep the connection open)

    def text(self) -> str:
        return "\n".join(self.lines)

    def close_stdin(self) -> None:
        with self.lock, contextlib.suppress(OSError, ValueError):
            if self.proc is not None and self.proc.stdin is not None:
                self.proc.stdin.close()

    def kill_ssh(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            if self.proc is not None:
                self.proc.kill()

    def stop(self) -> None:
        """Stop the binary (end-of-file on its stdin watcher: SIGTERM, SIGKILL later); kill the connection after
        GRACE_S. Safe from any thread."""
        self.close_stdin()
        with self.lock:
            if self._kill_timer is None:
                self._kill_timer = threading.Timer(GRACE_S, self.kill_ssh)
                self._kill_timer.daemon = True
                self._kill_timer.start()

    def timeout(self) -> None:
        self.timed_out = True
        self.stop()

    def finish(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        if self.proc is None:
            return
        self.close_stdin()
        try:
            self.proc.wait(timeout=5.0 if self.returncode is not None else GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill_ssh()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=30)


def _delegate_names(request: dict[str, Any]) -> list[str]:
    """The delegates benchmark_model applies (names: xnnpack, gpu, nnapi); InputError for one it cannot."""
    if request.get("delegate_names") is not None:
        names = list(request["delegate_names"])
    else:
        names = [d if isinstance(d, str) else (d.get("name") or d.get("library")) for d in request.get("delegates") or []]
    try:
        bm.delegate_flags(names)
    except ValueError as e:
        raise InputError(f"delegate {e.args[0]!r} cannot be applied by benchmark_model",
                         "use xnnpack, gpu or nnapi with a benchmark binary, or measure with the agent "
                         "(no benchmark binary) for the Edge TPU") from None
    return names


def _binary_failure(parsed: dict[str, Any], rc: int | None, text: str, where: str) -> dict[str, Any]:
    """The run's `error` event for a benchmark_model that failed: its last ERROR line, on one line."""
    real = [e for e in parsed["errors"] if e != "no benchmark results in the output"]
    errors = [e for e in real if "Benchmarking failed" not in e] or real
    low = " ".join(errors).lower()
    last = errors[-1] if errors else (_last_line(text) if rc else "no benchmark results in the output")
    last = " ".join((last or f"exit code {rc}").split())
    if rc in (126, 127) or "exec format error" in low or "exec format error" in text.lower():
        kind, hint = "device", "the device could not execute benchmark_model: give LiteRT's static build for its architecture"
    elif "didn't find op" in low or "custom op" in low or "unresolved" in low or "registration failed" in low:
        kind, hint = "device", "this benchmark_model is older than the model's ops: use a newer binary, or export for an older runtime"
    elif "failed to load model" in low or "model loader" in low or "flatbuffer" in low:
        kind, hint = "input", "the model file is not a valid TFLite model; re-export it"
    else:
        kind, hint = "device", "benchmark_model could not run this model there; its output is in the stderr tail"
    return {"event": "error", "kind": kind, "message": f"benchmark_model failed on {where} (exit code {rc}): {last}",
            "hint": hint}


_VERSION = re.compile(r"(?:LiteRT|TensorFlow Lite|TFLite)[^\n]*?\bversion[:= ]+v?(\d+\.\d+[\w.+-]*)", re.IGNORECASE)


def _binary_version(text: str) -> str | None:
    """The runtime version benchmark_model printed, if it did (most releases do not)."""
    m = _VERSION.search(text)
    return m.group(1) if m else None


def _mb(n: Any) -> str:
    return "?" if n is None else f"{int(n) / 1e6:.1f} MB"


def _last_line(text: str) -> str:
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    return lines[-1] if lines else ""
