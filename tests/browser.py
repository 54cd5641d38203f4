"""Render a page in headless Chromium over the DevTools protocol (``websocket-client``) and report
what a reader's browser saw: every image's natural size, the text of every ``[data-key]``
element, console errors, every URL the page requested, and a PNG screenshot.

Used by the browser test of ``report.html`` and, from the command line, to make the README's
screenshot: ``python -m tests.browser REPORT.html OUT.png [--height PX]``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-allow-origins=*", "--remote-debugging-port=0", "--hide-scrollbars",
)  # fmt: skip
PAGE_STATE = """JSON.stringify({
  images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth,
           height: i.naturalHeight, complete: i.complete, scheme: i.src.split(':')[0]})),
  keys: [...document.querySelectorAll('[data-key]')].map(e => [e.dataset.key, e.textContent]),
  scripts: document.scripts.length,
  stylesheets: [...document.querySelectorAll('link[rel=stylesheet]')].length,
  height: document.documentElement.scrollHeight
})"""


def find_chromium() -> str | None:
    for name in CHROMIUM:
        path = (
            shutil.which(name)
            if not name.startswith("/")
            else (name if Path(name).exists() else None)
        )
        if path:
            return path
    return None


@dataclass
class PageReport:
    images: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)
    console_errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    scripts: int = 0
    stylesheets: int = 0
    height: int = 0


class _Session:
    def __init__(self, ws) -> None:
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        for msg in self.events:
            if msg.get("method") == event:
                return msg
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == event:
                return msg
        raise TimeoutError(event)


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def render(page: Path, screenshot: Path | None = None, width: int = 1200,
           max_height: int | None = None, chromium: str | None = None) -> PageReport:  # fmt: skip
    """Open ``page`` (a local file) in a fresh headless Chromium profile and report on it."""
    import websocket

    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium executable")
    profile = Path(tempfile.mkdtemp(prefix="vb-chromium-"))
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        port = _devtools_port(profile, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        target = next(t for t in targets if t.get("type") == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60,
                                         suppress_origin=True)  # fmt: skip
        s = _Session(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            s.call(f"{domain}.enable")
        s.call("Emulation.setDeviceMetricsOverride",
               {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
        s.call("Page.navigate", {"url": Path(page).resolve().as_uri()})
        s.wait_for("Page.loadEventFired")
        state = json.loads(s.call("Runtime.evaluate", {"expression": PAGE_STATE,
                                                       "returnByValue": True})["result"]["value"])  # fmt: skip
        report = PageReport(images=state["images"], keys=dict(state["keys"]),
                            scripts=state["scripts"], stylesheets=state["stylesheets"],
                            height=state["height"])  # fmt: skip
        if screenshot is not None:
            height = min(state["height"], max_height or state["height"])
            s.call("Emulation.setDeviceMetricsOverride",
                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
            shot = s.call("Page.captureScreenshot", {"format": "png", "clip": {
                "x": 0, "y": 0, "width": width, "height": height, "scale": 1}})  # fmt: skip
            import base64

            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        for msg in s.events:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                report.console_errors.append(str(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                report.console_errors.append(str(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                report.console_errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                report.requests.append(params["request"]["url"])
        ws.close()
        return report
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    limit = int(args[args.index("--height") + 1]) if "--height" in args else None
    result = render(Path(args[0]), Path(args[1]), max_height=limit)
    print(json.dumps({"images": len(result.images), "errors": result.console_errors}))
