"""Headless Chromium over the DevTools protocol: load a page and see what a reader would.

``--dump-dom`` shows the DOM but not what failed to load; the protocol reports every request
(so a test can insist that a page fetches nothing from elsewhere), every failed load, console
errors and uncaught exceptions, evaluates JavaScript in the page, and takes screenshots.
Chromium is Debian's (``make install`` puts it there when it is missing); a test that needs
it fails when it is absent rather than skipping.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]  # fmt: skip


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is not installed: run `make install` as root, or `apt-get install -y chromium`"
    return path


@dataclass
class PageLoad:
    """What loading a page did."""

    requests: list[str] = field(default_factory=list)  # every URL requested, subframes included
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, error)
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, HTTP >= 400
    statuses: dict[str, int] = field(default_factory=dict)


class Chromium:
    """One headless browser with its own fresh profile; one tab, driven over a websocket."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000):
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert self.proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def send(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        """Call a protocol method and wait for its answer, keeping the events that arrive meanwhile."""
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            answer = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if answer.get("id") == msg_id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer.get("result", {})
            self.events.append(answer)

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return

    def set_cookie(self, name: str, value: str, url: str) -> None:
        self.send("Network.setCookie", session=True, name=name, value=value, url=url)

    def load(self, url: str, wait_for: str | None = None, timeout: float = 60) -> PageLoad:
        """Navigate, wait for the load event (and ``wait_for``, a JS expression, to be true), and
        report what was requested and what failed."""
        self.events.clear()
        navigation = self.send("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + timeout
        # A new document fires a load event; a fragment of the current one (no loaderId) does not.
        while "loaderId" in navigation and not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{url} did not finish loading"
            self._drain(0.2)
        while wait_for and not self.evaluate(wait_for):
            assert time.monotonic() < deadline, f"{url}: still not true: {wait_for}"
            self._drain(0.2)
        self._drain(0.5)  # late requests: images, subframe resources
        return self._summary()

    def _summary(self) -> PageLoad:
        out = PageLoad()
        urls = {}
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
                out.requests.append(p["request"]["url"])
            elif method == "Network.responseReceived":
                out.statuses[p["response"]["url"]] = p["response"]["status"]
                if p["response"]["status"] >= 400:
                    out.errors.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif method == "Network.loadingFailed":
                out.failed.append((urls.get(p["requestId"], "?"), p.get("errorText", "")))
            elif method == "Runtime.exceptionThrown":
                out.errors.append(p["exceptionDetails"].get("text", "") + str(p["exceptionDetails"].get("exception", {}).get("description", "")))
            elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.errors.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
        return out

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params |= {"captureBeyondViewport": True,
                       "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}  # fmt: skip
        data = self.send("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
