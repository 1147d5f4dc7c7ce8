"""Open a local HTML file in headless Chromium and report what happened: console errors, exceptions, failed
and outside requests, every image's decoded size, horizontal overflow, and a full-page screenshot.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: the browser reads
NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4), so nothing but the standard
library is needed. The page is opened with the network emulated offline: a report that needed the network
would show failed requests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "install Debian's chromium (apt-get install chromium; `make test` does it when missing)"

CHECK_JS = """JSON.stringify({
  title: document.title,
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
                                          naturalHeight: i.naturalHeight, shownWidth: i.getBoundingClientRect().width})),
  scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
  sections: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
  scripts: document.scripts.length,
  externalSheets: [...document.querySelectorAll('link[rel=stylesheet]')].length,
  text: document.body.innerText
})"""


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    url: str
    title: str
    images: list[dict[str, Any]]
    scroll_width: int
    inner_width: int
    sections: list[str]
    scripts: int
    external_sheets: int
    text: str
    screenshot: bytes
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Pipe:
    def __init__(self, read_fd: int, write_fd: int, deadline: float) -> None:
        self.r, self.w, self.deadline = read_fd, write_fd, deadline
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _recv(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe (it exited)")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._recv()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._recv())


def open_page(path: Path, *, width: int = 390, height: int = 844, mobile: bool = True, timeout: float = 60.0,
              chromium: str | None = None) -> PageResult:
    """Load `path` offline at a phone-sized viewport, wait for the load event, check it, screenshot the full page."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError(f"no headless browser found ({', '.join(CANDIDATES)}): {INSTALL_HINT}")
    start = time.monotonic()
    profile = tempfile.mkdtemp(prefix="edgepool-chromium-")
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def child_fds() -> None:  # the browser's fd 3 reads our commands, fd 4 carries its answers
        a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
        os.dup2(a, 3)
        os.dup2(b, 4)

    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(argv, preexec_fn=child_fds, close_fds=False, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(from_chrome_r, to_chrome_w, start + timeout)
    url = Path(path).resolve().as_uri()
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})
        s = pipe.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", {}, s)
        pipe.call("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1}, s)
        pipe.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": mobile}, s)
        pipe.call("Page.navigate", {"url": url}, s)
        pipe.wait_for("Page.loadEventFired")
        check = json.loads(pipe.call("Runtime.evaluate", {"expression": CHECK_JS, "returnByValue": True}, s)["result"]["value"])
        metrics = pipe.call("Page.getLayoutMetrics", {}, s)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = pipe.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
            "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}, s)
        with contextlib.suppress(Exception):
            pipe.call("Browser.close")
    finally:
        for fd in (from_chrome_r, to_chrome_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the browser we started and its helper processes
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    res = PageResult(url, check["title"], check["images"], check["scrollWidth"], check["innerWidth"], check["sections"],
                     check["scripts"], check["externalSheets"], check["text"], base64.b64decode(shot["data"]))
    for e in pipe.events:
        m, p = e.get("method"), e.get("params") or {}
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            res.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and (p.get("entry") or {}).get("level") == "error":
            res.console_errors.append(f"{p['entry'].get('source')}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails") or {}
            res.exceptions.append(str((d.get("exception") or {}).get("description") or d.get("text")))
        elif m == "Network.loadingFailed":
            res.failed_requests.append(f"{p.get('type')}: {p.get('errorText')}")
        elif m == "Network.requestWillBeSent":
            res.requests.append(str((p.get("request") or {}).get("url", ""))[:80])
    res.seconds = time.monotonic() - start
    return res
