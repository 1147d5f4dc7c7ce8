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
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DeviceError, InputError
from . import AGENT_PATH, AgentRun

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
                 ssh: str = "ssh") -> None:
        self.target = parse_ssh_uri(target) if isinstance(target, str) else target
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
        """Like LocalTransport.run: stage, run the agent on the device, stream its events, clean up."""
        req = json.loads(json.dumps(request))
        files: list[tuple[str, Path | bytes]] = [("agent.py", AGENT_PATH), ("model.tflite", Path(req["model_path"]))]
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
        run = self._session([("agent.py", AGENT_PATH)], ["--probe"], None)
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
            out.stderr_tail = _tail(err_path)
        return self._conclude(out, s, proc.returncode)

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
            if out.interrupted:
                out.returncode = ssh_rc
                return out
            if s.timed_out:
                raise DeviceError(f"{t.display} did not answer within {self.timeout_s:g} s",
                                  "check the device and the network, or allow more time")
            raise self.connection_error(ssh_rc, stderr)
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
            kind = ev.get("event")
            if kind == "window":
                out.windows.append(ev)
            else:
                out.events.append(ev)
                if kind == "result":
                    out.result = ev
                elif kind == "error":
                    out.error = ev
            if on_event is not None:
                on_event(ev)

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


def _mb(n: Any) -> str:
    return "?" if n is None else f"{int(n) / 1e6:.1f} MB"


def _last_line(text: str) -> str:
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    return lines[-1] if lines else ""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
