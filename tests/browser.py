"""Headless Chromium driven over the DevTools protocol, to check what a person sees in a page.

Chromium's `--remote-debugging-pipe` speaks the protocol as NUL-separated JSON on file
descriptors 3 (commands in) and 4 (events and replies out): no websocket client, no browser
download, nothing from the network. Chromium comes from Debian's package (`.ci/provision`);
where it is missing the test skips, unless AUTOML_REQUIRE_CHROMIUM=1 (CI) makes it fail.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]

# what a person sees, read from the page after every plotly figure has drawn: per figure, the
# traces it was given and the points, bars, lines and table rows the browser laid out; per table
# row, whether it lies inside the part of the figure that shows (plotly clips a table to its
# figure's height, leaving the rest to a scroll area a few pixels high)
SEEN = r"""
(async () => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  for (let i = 0; i < 200 && plots.some(p => !p._fullLayout); i++)
    await new Promise(r => setTimeout(r, 50));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const visible = (el, box) => {  // wholly inside box, give or take a pixel of border
    const r = el.getBoundingClientRect();
    return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
  };
  return plots.map(p => {
    const box = p.getBoundingClientRect();
    const drawn = p.querySelectorAll(
      '.scatterlayer .point, .scatterlayer .js-line, .barlayer .point, .heatmaplayer image, '
      + '.pielayer .slice, .parcoords .trace, .layer-above image, .imagelayer image').length;
    const tables = [...p.querySelectorAll('g.table')].map((t, i) => {
      const view = t.querySelector('.scroll-background').getBoundingClientRect();
      const column = t.querySelector('.y-column');
      const rows = [...column.querySelectorAll('.column-block:not(#header) .cell-rect')];
      const trace = (p.data || []).filter(d => d.type === 'table')[i];
      return {rows: trace ? trace.cells.values[0].length : null,
              shown: rows.filter(r => visible(r, view)).length, height: Math.round(view.height)};
    });
    const title = (p.closest('section') || p.parentElement).getAttribute('data-title')
      || (p.querySelector('.gtitle') || {}).textContent || '';
    return {title, traces: (p.data || []).length, drawn, tables,
            height: Math.round(box.height), top: Math.round(box.top + window.scrollY)};
  });
})()
"""


def chromium() -> str:
    """The Chromium executable; skips (or fails, with AUTOML_REQUIRE_CHROMIUM=1) without one."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("AUTOML_REQUIRE_CHROMIUM") == "1":
        pytest.fail("AUTOML_REQUIRE_CHROMIUM=1 but no chromium on PATH")
    pytest.skip("no chromium (Debian package 'chromium'; .ci/run installs it)")


class Browser:
    """One headless Chromium; `open` loads a page in a new tab and collects its console errors."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="automl-chromium-")
        self.width, self.height = width, height
        commands_r, commands_w = os.pipe()  # chromium reads commands on its fd 3
        replies_r, replies_w = os.pipe()  # and writes replies and events on its fd 4

        def wire() -> None:  # in the child: dup first, so an fd already at 3 or 4 stays open
            a, b = os.dup(commands_r), os.dup(replies_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire)
        os.close(commands_r)
        os.close(replies_w)
        self.write, self.read = commands_w, replies_r
        self.buffer, self.sent, self.events = b"", 0, []
        self.session: str | None = None
        self.errors: list[str] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.write, self.read):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _receive(self, timeout: float) -> dict:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.read], [], [], timeout)
            chunk = os.read(self.read, 1 << 20) if ready else b""
            if not chunk:
                raise TimeoutError("chromium did not answer")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def _note(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description")
                               or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                        for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        self.events.append(message)

    def call(self, method: str, params: dict | None = None, *, session: bool = True,
             timeout: float = 60) -> dict:
        self.sent += 1
        message = {"id": self.sent, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(max(0.1, deadline - time.monotonic()))
            if reply.get("id") == self.sent:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._note(reply)

    def _wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self._note(self._receive(max(0.1, deadline - time.monotonic())))

    def open(self, url: str, *, timeout: float = 120) -> Browser:
        """Load `url` in a new tab and wait for its load event."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.call("Target.attachToTarget", {
            "targetId": target["targetId"], "flatten": True}, session=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self._wait_for("Page.loadEventFired", timeout)
        return self

    def evaluate(self, expression: str, *, timeout: float = 120):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def seen(self) -> list[dict]:
        """What each plotly figure on the page shows (see SEEN)."""
        return self.evaluate(SEEN)

    def html_tables(self) -> list[dict]:
        """Per HTML <table>: its rows, and how many a person sees (laid out, not hidden, inside
        the page's width)."""
        return self.evaluate("""[...document.querySelectorAll('table')].map(t => {
          const rows = [...t.rows];
          const width = document.documentElement.scrollWidth;
          return {rows: rows.length, shown: rows.filter(r => {
            const b = r.getBoundingClientRect();
            return b.height > 0 && b.left >= 0 && b.right <= width + 1
              && getComputedStyle(r).visibility !== 'hidden';
          }).length};
        })""")

    def screenshot(self, out: str | Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page's height when full_page)."""
        params: dict = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": self.width, "height": size["height"], "scale": 1})
        out = Path(out)
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))
        return out
