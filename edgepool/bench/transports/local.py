"""Local transport: the agent runs in a child process on this machine.

The agent file is copied to a private temp folder first (as it would be to a device), so nothing from
edgepool can be imported by accident. The child gets its own session, so a terminal Ctrl-C reaches only
the CLI, which forwards exactly one SIGINT: the agent then reports the windows it finished and exits.
`interrupt()` does the same from another thread (the multi-device runner's Ctrl-C).
A crash of the runtime kills only the child; the windows it already streamed are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ...errors import DeviceError
from . import AGENT_FILES, AgentRun, stderr_tail

GRACE_S = 15.0  # how long an interrupted agent gets to send its result


class LocalTransport:
    name = "local"

    def __init__(self, python: str | None = None, timeout_s: float | None = None) -> None:
        self.python = python or sys.executable
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None  # the agent, while it runs
        self._grace: threading.Timer | None = None

    def interrupt(self) -> None:
        """Stop the agent, from any thread (the multi-device runner's Ctrl-C): one SIGINT to the child (it reports
        the windows it finished), SIGKILL after GRACE_S. `run` then returns an AgentRun with
        `interrupted` set; so does every later run (the runner makes its transports per benchmark)."""
        self._stop.set()
        with self._lock:
            proc = self._proc
            if proc is None or self._grace is not None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
            self._grace = threading.Timer(GRACE_S, _kill, (proc,))
            self._grace.daemon = True
            self._grace.start()

    def run(self, request: dict[str, Any], on_event: Any = None) -> AgentRun:
        out = AgentRun()
        with tempfile.TemporaryDirectory(prefix="edgepool-agent-") as tmp:
            for name, src in AGENT_FILES:
                shutil.copyfile(src, Path(tmp) / name)
            agent = Path(tmp) / "agent.py"
            err_path = Path(tmp) / "stderr.txt"
            with open(err_path, "wb") as err:
                try:
                    proc = subprocess.Popen(
                        [self.python, str(agent)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        cwd=tmp,
                        start_new_session=True,
                    )
                except OSError as e:
                    raise DeviceError(f"cannot start the agent with {self.python}: {e.strerror or e}",
                                      "give the path of a Python 3 with numpy and a TFLite runtime") from None
                with self._lock:
                    self._proc, self._grace = proc, None
                if self._stop.is_set():  # interrupted while it started
                    self.interrupt()
                killer = None
                if self.timeout_s:
                    killer = threading.Timer(self.timeout_s, _kill, (proc,))
                    killer.daemon = True
                    killer.start()
                try:
                    try:
                        with contextlib.suppress(BrokenPipeError):
                            proc.stdin.write(json.dumps(request).encode())
                            proc.stdin.close()
                        _read(proc, out, on_event)
                    except KeyboardInterrupt:
                        out.interrupted = True
                        _interrupt_and_drain(proc, out)
                    if self._stop.is_set():
                        out.interrupted = True
                    proc.wait()
                finally:
                    with self._lock:
                        self._proc = None
                        if self._grace is not None:
                            self._grace.cancel()
                            self._grace = None
                    if killer is not None:
                        killer.cancel()
                    if proc.poll() is None:
                        _kill(proc)
                        proc.wait()
            out.returncode = proc.returncode
            out.stderr_tail = stderr_tail(err_path)
        return out


def _read(proc: subprocess.Popen, out: AgentRun, on_event: Any) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line cut by an interrupt; the agent's output is JSON only
        if isinstance(ev, dict):
            out.take(ev, on_event)


def _interrupt_and_drain(proc: subprocess.Popen, out: AgentRun) -> None:
    """Forward one SIGINT, then collect what the agent still sends (bounded by GRACE_S)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    timer = threading.Timer(GRACE_S, _kill, (proc,))
    timer.daemon = True
    timer.start()
    try:
        _read(proc, out, None)
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
        _kill(proc)
    finally:
        timer.cancel()


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
