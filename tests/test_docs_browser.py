"""The documentation site in a real browser: math typeset, no console error, every image loaded.

Builds the site with ``mkdocs build --strict`` into a temporary folder (or takes the one that
.ci/run built, named by ``TINYGRAD_LLM_SITE``), serves it on a free local port (http.server in
a thread), and opens the study path, the autograd page, the GPT page and every other page with
math in headless Chromium (Debian's ``chromium``). Chromium is driven through its DevTools
protocol over a pipe (``--remote-debugging-pipe``: JSON messages ending in a NUL byte on file
descriptors 3 and 4), so nothing beyond the standard library is needed. Screenshots are saved
under the test's temporary folder. Skips when MkDocs or Chromium is absent (.ci/run installs
both).
"""

import base64
import fcntl
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The study path, the autograd page and the GPT page; then every other page with math, so that
# a TeX error anywhere on the site shows up as KaTeX's console error.
PAGES = {"index": "", "autograd": "autograd/", "gpt": "gpt/"}
PAGES.update({page.stem: f"{page.stem}/" for page in sorted((ROOT / "docs").glob("*.md"))
              if "```math" in page.read_text(encoding="utf-8") and page.stem not in PAGES})

# What the page shows once loaded: KaTeX's output, math left untypeset, images that failed.
INSPECT = r"""(() => {
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("pre, code, script, style, .katex")) continue;
    for (const mark of ["$$", "\\(", "\\[", "\\frac"]) {
      if (node.textContent.includes(mark)) raw.push(node.textContent.trim().slice(0, 80));
    }
  }
  return {
    katex: document.querySelectorAll(".katex").length,
    arithmatex: document.querySelectorAll(".arithmatex").length,
    untypeset: [...document.querySelectorAll(".arithmatex")]
      .filter(e => !e.querySelector(".katex")).length,
    katexErrors: document.querySelectorAll(".katex-error").length,
    raw: raw,
    // a display wider than the text column at 1280 px, which would need a scroll bar
    wide: [...document.querySelectorAll(".arithmatex")]
      .filter(e => e.scrollWidth > e.clientWidth + 1)
      .map(e => (e.querySelector("annotation")?.textContent || "").trim().slice(0, 60)),
    images: document.images.length,
    brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
      .map(i => i.src),
    title: document.title,
  };
})()"""


class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe: commands and their events."""

    def __init__(self, chromium, profile):
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: move the pipe ends above
        # 10 first, so that the dup2 calls below cannot overwrite one another.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)

        def child_fds():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=child_fds)   # our own ends are not inheritable
        for fd in (to_browser_r, from_browser_w, high_r, high_w):
            os.close(fd)
        self.write_fd, self.read_fd = to_browser_w, from_browser_r
        self.buffer = b""
        self.events = []
        self.next_id = 0

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method, params=None, session=None, timeout=30.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.write_fd)
        os.close(self.read_fd)


def _problems(events):
    """Console errors, uncaught exceptions, failed requests and error log entries, as text."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                 for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append("exception: " + details.get("exception", {}).get(
                "description", details.get("text", "")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"request failed: {params.get('errorText')}")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("material", reason="the docs extra is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    if os.environ.get("TINYGRAD_LLM_SITE"):     # .ci/run has just built it, strict
        site_dir = Path(os.environ["TINYGRAD_LLM_SITE"])
        assert (site_dir / "index.html").is_file(), f"no site built in {site_dir}"
    else:
        site_dir = tmp_path_factory.mktemp("site")
        build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                                "--site-dir", str(site_dir)], cwd=ROOT, capture_output=True,
                               text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        assert build.returncode == 0, build.stderr[-3000:]
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser = DevTools(chromium, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        browser.close()
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _open(browser, url, screenshots):
    """Load url in a fresh tab; return what INSPECT saw and the problems reported meanwhile."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
    session = session["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=session)
    browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900,
                                                          "deviceScaleFactor": 1,
                                                          "mobile": False}, session=session)
    browser.events.clear()
    browser.send("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired")
    seen = {}
    for _ in range(50):               # KaTeX runs on load; wait until every block is typeset
        seen = browser.send("Runtime.evaluate", {"expression": INSPECT, "returnByValue": True},
                            session=session)["result"]["value"]
        if seen["untypeset"] == 0:
            break
        time.sleep(0.1)
    center = "?.scrollIntoView({block: 'center'})"
    shots = [("top", "window.scrollTo(0, 0)"),
             ("math", "document.querySelector('.katex-display')" + center),
             ("last-math", "[...document.querySelectorAll('.katex-display')].pop()" + center)]
    if seen.get("images"):
        shots.append(("image", "document.querySelector('article img')" + center))
    for name, scroll in shots:
        browser.send("Runtime.evaluate", {"expression": scroll}, session=session)
        time.sleep(0.2)
        png = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        screenshots(name).write_bytes(base64.b64decode(png))
    problems = _problems(browser.events)
    browser.send("Target.closeTarget", {"targetId": target})
    return seen, problems


@pytest.mark.parametrize("page", list(PAGES))
def test_the_page_typesets_its_math_and_loads_cleanly(site, page, tmp_path):
    browser, base = site
    seen, problems = _open(browser, base + PAGES[page],
                           lambda name: tmp_path / f"{page}-{name}.png")
    print(f"{page}: {seen['katex']} formulas, {seen['images']} images; screenshots in {tmp_path}")
    assert problems == []
    assert seen["arithmatex"] > 0, "no math on the page"
    assert seen["untypeset"] == 0 and seen["katex"] >= seen["arithmatex"]
    assert seen["katexErrors"] == 0
    assert seen["raw"] == [], "math left as raw TeX"
    assert seen["wide"] == [], f"formulas wider than the page: {seen['wide']}"
    assert seen["brokenImages"] == []
    assert "tinygrad_llm" in seen["title"]
    for name in ("top", "math", "last-math"):
        assert (tmp_path / f"{page}-{name}.png").stat().st_size > 10_000
