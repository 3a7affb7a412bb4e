"""The built book as a reader sees it: every page opened in headless Chromium (Debian's `chromium`).

For each page (every file in _toc.yml, and every chapter in notebooks/) the test serves
`_build/html/` on 127.0.0.1, loads the page in Chromium, lets its JavaScript run, and checks:

- the page loads (HTTP 200, load event) and shows its heading, and the heading is in the title;
- every `<img>` is decoded by the browser with a non-zero size (`naturalWidth > 0`), every local
  image file is a non-empty PNG/SVG, and the page shows at least as many images as
  tests/test_built_book.py asks of a chapter, so the static figures of the widget cells are there;
- no error output: no `output error`/`traceback` element, no "Traceback (most recent call last)",
  no widget placeholder or widget JSON as text, and on chapters none of tests/test_built_book.py's
  ERROR_MARKERS in the DOM after JavaScript ran;
- no JavaScript error, no failed request to the book's own files (see `_is_ignored` for the
  messages that are ignored, and why);
- a full-page screenshot, saved as an artefact to book/_build/screenshots/<page>.png, is a real
  picture: a PNG of more than a few KB that is not one flat colour.

Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (JSON messages on
file descriptors 3 and 4), so only the standard library is needed. The browser is offline by
design: every host name except the local server's fails to resolve, so the test does not depend on
the network and checks what a reader sees from the built files alone.

Skips when Chromium is not installed. Without a built book it skips too, unless
WRENBOOK_REQUIRE_BOOK=1 (set by make test), where a missing book is a failure.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import importlib.util
import io
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image  # matplotlib's dependency

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "book" / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium")

if CHROMIUM is None:
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)", allow_module_level=True)
if not (HTML / "index.html").is_file():
    if os.environ.get("WRENBOOK_REQUIRE_BOOK") == "1":
        pytest.fail("the book was not built: _build/html/index.html is missing", pytrace=False)
    pytest.skip("the book is not built (make html)", allow_module_level=True)


def _built_book_checks():
    """tests/test_built_book.py, loaded by path (whatever pytest's import mode): its constants."""
    spec = importlib.util.spec_from_file_location("_wrenbook_built_book_checks",
                                                  Path(__file__).with_name("test_built_book.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CHECKS = _built_book_checks()
CHAPTERS = _CHECKS.CHAPTERS
ERROR_MARKERS = _CHECKS.ERROR_MARKERS
MIN_IMAGES = getattr(_CHECKS, "MIN_IMAGES", {})


def _book_pages() -> list[str]:
    """Every page in _toc.yml (root and files), and every chapter notebook even if the table lacks it."""
    listed = re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*(\S+)\s*$",
                        (ROOT / "_toc.yml").read_text(encoding="utf-8"), flags=re.MULTILINE)
    pages = [entry.removesuffix(".md").removesuffix(".ipynb") for entry in listed]
    return pages + [f"book/chapters/{chapter}" for chapter in CHAPTERS if f"book/chapters/{chapter}" not in pages]


PAGES = _book_pages()  # paths such as book/chapters/04_gradcam, without .html
# Text a reader must not see on any page: a traceback, or a widget that could not be shown (the
# chapters' widgets are hidden, with a static figure before them; a widget left in an output needs a
# kernel). The chapters are also held to test_built_book's ERROR_MARKERS (a "{glue:" left unresolved,
# say), which the prose pages may quote: the API page documents the {glue:} role.
VISIBLE_ERROR_TEXT = ("Traceback (most recent call last)", "Error displaying widget", "Loading widget...",
                      "application/vnd.jupyter.widget-view+json")

WIDTH, HEIGHT = 1280, 2000
MAX_SCREENSHOT_HEIGHT = 30_000  # px; a chapter is about 10 000 px tall, the API page more
PAGE_TIMEOUT = 60.0  # seconds for one page to load; a page takes about a second


# --- the local web server ---------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def _serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- a minimal DevTools protocol client over --remote-debugging-pipe ------------------------------

def _move_above_9(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """Headless Chromium; commands and events are NUL-terminated JSON on fds 3 (in) and 4 (out)."""

    def __init__(self, executable: str, profile: Path, log: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends move to descriptors >= 10, so that putting them on 3 and 4 clobbers neither
        to_browser_r, from_browser_w = (_move_above_9(fd) for fd in (to_browser_r, from_browser_w))
        flags = [
            "--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--mute-audio",
            # as root Chromium refuses to start with its sandbox; the pages are the book's own files
            "--no-sandbox",
            # no background traffic: on a closed network its refused connections are only noise
            "--disable-quic", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--disable-extensions",
            # offline by design: every host but the local server fails to resolve at once
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
            "--remote-debugging-pipe", "about:blank",
        ]
        # bash puts the pipe's ends on the descriptors 3 and 4 that Chromium expects (Debian's sh, dash,
        # only redirects descriptors 0-9)
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self._log = open(log, "wb")
        self.process = subprocess.Popen(["bash", "-c", script, executable, *flags], stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._log_path = log
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []

    def log_tail(self) -> str:
        return self._log_path.read_text(errors="replace")[-2000:]

    def _read(self, deadline: float) -> None:
        """Read what the browser sent; file each message as a reply or an event."""
        timeout = deadline - time.monotonic()
        if timeout <= 0 or not select.select([self._from_browser], [], [], timeout)[0]:
            raise TimeoutError("Chromium did not answer in time")
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
            raise RuntimeError(f"Chromium closed the DevTools pipe; its log:\n{self.log_tail()}")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        for raw in messages:
            message = json.loads(raw)
            if "id" in message:
                self._replies[message["id"]] = message
            else:
                self.events.append(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while self._next_id not in self._replies:
            self._read(deadline)
        reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_for(self, predicate, timeout: float) -> dict | None:
        """The first event (from the start of self.events) that satisfies predicate, or None."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            try:
                self._read(deadline)
            except TimeoutError:
                return None

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()


# JavaScript run in the page once it has loaded: wait for every image to decode, then describe the page.
_DESCRIBE_PAGE = """(async () => {
  await Promise.all([...document.images].map(image => image.decode().catch(() => null)));
  const heading = document.querySelector("article h1");  // not the hidden print-only copy
  return {
    title: document.title,
    heading: heading ? heading.textContent.replace(/[#\\u00b6]\\s*$/, "").trim() : null,
    headingShown: heading ? heading.getClientRects().length > 0 : false,
    images: [...document.images].map(image => ({
      src: image.getAttribute("src"),
      complete: image.complete,
      width: image.naturalWidth,
      height: image.naturalHeight,
    })),
    errorElements: document.querySelectorAll(".output.error, .output.traceback, .output_error").length,
    text: document.body.innerText,
    html: document.documentElement.outerHTML,
  };
})()"""


# resolves once the page has painted a frame at its new size
_AFTER_NEXT_FRAME = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _event_session(event: dict, session: str) -> bool:
    return event.get("sessionId") == session


def _visit(browser: Browser, base_url: str, page: str) -> dict:
    """Open one page in a fresh tab; what the page shows, what went wrong on the way, a screenshot."""
    url = f"{base_url}/{page}.html"
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    first_event = len(browser.events)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.setLifecycleEventsEnabled", {"enabled": True}, session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session=session)
        started = time.monotonic()
        navigation = browser.send("Page.navigate", {"url": url}, session=session)
        assert "errorText" not in navigation, f"{page}: {navigation['errorText']}"
        loaded = browser.wait_for(lambda e: _event_session(e, session) and e["method"] == "Page.loadEventFired",
                                  PAGE_TIMEOUT)
        assert loaded is not None, f"{page}: no load event within {PAGE_TIMEOUT:.0f} s"
        # scripts that run after the load event (deferred MathJax, widget managers) get until the
        # network is idle, at most a few seconds
        browser.wait_for(lambda e: _event_session(e, session) and e["method"] == "Page.lifecycleEvent"
                         and e["params"]["name"] == "networkIdle", 5)
        described = browser.send("Runtime.evaluate", {"expression": _DESCRIBE_PAGE, "awaitPromise": True,
                                                      "returnByValue": True}, session=session)
        assert "exceptionDetails" not in described, f"{page}: {described['exceptionDetails']}"
        # a full-page screenshot: the viewport grows to the page's height (captureBeyondViewport
        # instead cuts the theme's sidebars off and shifts the text)
        content = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = min(int(content["height"]) + 1, MAX_SCREENSHOT_HEIGHT)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Runtime.evaluate", {"expression": _AFTER_NEXT_FRAME, "awaitPromise": True}, session=session)
        shot = browser.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}, session=session)
        load_seconds = time.monotonic() - started
    finally:
        events = [e for e in browser.events[first_event:] if _event_session(e, session)]
        browser.send("Target.closeTarget", {"targetId": target})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / f"{Path(page).name}.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return {"page": page, "url": url, "events": events, "screenshot": screenshot, "seconds": load_seconds,
            **described["result"]["value"]}


@pytest.fixture(scope="module")
def site():
    """The built book on a local server, opened page by page in one headless Chromium."""
    for old in SCREENSHOTS.glob("*.png"):  # the artefacts are this run's screenshots only
        old.unlink()
    server = _serve(HTML)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="wrenbook-chromium-") as scratch:
        browser = Browser(CHROMIUM, Path(scratch) / "profile", Path(scratch) / "chromium.log")
        visits: dict[str, dict | Exception] = {}

        def visit(page: str) -> dict:
            """Each page is opened once; its three tests share what it showed, or how it failed."""
            if page not in visits:
                try:
                    visits[page] = _visit(browser, base_url, page)
                except (AssertionError, OSError, RuntimeError, TimeoutError) as error:
                    visits[page] = error
            if isinstance(visits[page], Exception):
                raise visits[page]
            return visits[page]

        try:
            yield base_url, browser, visit
        finally:
            browser.close()
            server.shutdown()
            server.server_close()


# --- what counts as a problem -------------------------------------------------------------------

def _is_local(url: str, base_url: str) -> bool:
    return url.startswith((base_url, "data:", "about:"))


# Console messages that are no fault of the book, each matched exactly:
KNOWN_HARMLESS = (
    # sphinx-thebe's configuration <script> (`const THEBE_JS_URL = ...`) is emitted twice in every page's
    # <head> by Jupyter Book 1.x; the second copy fails to redeclare the constants the first one set,
    # and nothing else is in it. Thebe (live code) is not enabled in this book anyway.
    "Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme on the first page a fresh browser profile opens: no light/dark mode is
    # stored yet, so it logs this and uses "auto".
    "Got invalid theme mode: . Resetting to auto.",
)


def _is_ignored(text: str, url: str, base_url: str) -> bool:
    """Messages that do not show a fault of the book.

    The pages load MathJax, require.js, thebe and the Jupyter widget manager from CDNs; the test is
    offline on purpose (see --host-resolver-rules), so those requests fail with ERR_NAME_NOT_RESOLVED
    and are not counted. /favicon.ico is asked for by the browser itself, not by the page (the book
    sets no favicon), so its 404 does not count either. Besides those, only KNOWN_HARMLESS is ignored.
    """
    if url and (not _is_local(url, base_url) or url == f"{base_url}/favicon.ico"):
        return True
    return "net::ERR_NAME_NOT_RESOLVED" in text or any(known in text for known in KNOWN_HARMLESS)


def _problems(visit: dict, base_url: str) -> list[str]:
    """JavaScript errors, console errors and failed local requests seen while the page loaded."""
    problems = []
    requested: dict[str, str] = {}
    for event in visit["events"]:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            requested[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived":
            response = params["response"]
            if response["status"] >= 400 and not _is_ignored("", response["url"], base_url):
                problems.append(f"HTTP {response['status']} for {response['url']}")
        elif method == "Network.loadingFailed":
            url = requested.get(params["requestId"], "")
            if not _is_ignored(params.get("errorText", ""), url, base_url):
                problems.append(f"request failed: {url} ({params.get('errorText')})")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            if not _is_ignored(text, details.get("url", ""), base_url):
                problems.append(f"JavaScript exception: {text.splitlines()[0] if text else details}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
            frames = params.get("stackTrace", {}).get("callFrames", [])
            if not _is_ignored(text, frames[0]["url"] if frames else "", base_url):
                problems.append(f"console.{params['type']}: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            if not _is_ignored(entry.get("text", ""), entry.get("url", ""), base_url):
                problems.append(f"console ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
    return problems


def _image_kind(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if b"<svg" in data[:1000]:
        return "svg"
    return None


def _complete_png(data: bytes) -> bool:
    """The browser draws what it can of a truncated PNG; Pillow decodes it all or fails."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


# --- the tests ----------------------------------------------------------------------------------

def test_index_redirects_to_the_intro(site):
    base_url = site[0]
    with urllib.request.urlopen(f"{base_url}/index.html", timeout=10) as response:
        assert response.status == 200
        assert 'url=book/intro.html' in response.read().decode()


@pytest.mark.parametrize("page", PAGES, ids=[Path(page).name for page in PAGES])
def test_page_loads_with_heading_and_no_errors(site, page):
    base_url, _, visit = site
    assert (HTML / f"{page}.html").is_file(), f"{page}.html was not rendered"
    shown = visit(page)
    assert shown["heading"] and shown["headingShown"], f"{page}: no visible <h1>"
    assert shown["title"].startswith(shown["heading"]), f"{page}: title {shown['title']!r} lacks the heading"
    assert shown["errorElements"] == 0, f"{page}: {shown['errorElements']} error outputs shown"
    for marker in VISIBLE_ERROR_TEXT:
        assert marker not in shown["text"], f"{page}: the page shows {marker!r}"
    if Path(page).name in CHAPTERS:
        for marker in ERROR_MARKERS:
            assert marker not in shown["html"], f"{page}: the rendered page contains {marker!r}"
    problems = _problems(shown, base_url)
    assert not problems, f"{page}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=[Path(page).name for page in PAGES])
def test_page_images_render(site, page):
    base_url, _, visit = site
    assert (HTML / f"{page}.html").is_file(), f"{page}.html was not rendered"
    shown = visit(page)
    images = shown["images"]
    if Path(page).name in CHAPTERS:
        needed = MIN_IMAGES.get(Path(page).name, 3)
        assert len(images) >= needed, f"{page}: {len(images)} images shown, at least {needed} expected"
    for image in images:
        source = image["src"] or ""
        label = source if len(source) < 120 else source[:60] + "..."
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, \
            f"{page}: the browser could not show {label}"
        if source.startswith("data:"):
            assert len(source) > 1_000, f"{page}: a tiny inline image {label}"
            if source.startswith("data:image/png;base64,"):
                assert _complete_png(base64.b64decode(source.partition(",")[2])), f"{page}: a broken inline PNG"
            continue
        with urllib.request.urlopen(urllib.parse.urljoin(shown["url"], source), timeout=10) as response:
            data = response.read()
        kind = _image_kind(data)
        assert len(data) > 1_000 and kind, f"{page}: {source} is not a non-empty PNG/SVG"
        assert kind != "png" or _complete_png(data), f"{page}: {source} is a broken PNG"


@pytest.mark.parametrize("page", PAGES, ids=[Path(page).name for page in PAGES])
def test_page_screenshot_is_saved(site, page):
    assert (HTML / f"{page}.html").is_file(), f"{page}.html was not rendered"
    screenshot = site[2](page)["screenshot"]
    assert screenshot.is_file() and screenshot.stat().st_size > 5_000, f"{screenshot} is missing or tiny"
    with Image.open(io.BytesIO(screenshot.read_bytes())) as picture:
        assert picture.format == "PNG" and picture.width == WIDTH and picture.height >= 500
        colours = picture.convert("RGB").getcolors(maxcolors=64)  # None: more than 64 colours
    assert colours is None or len(colours) > 8, f"{page}: the screenshot is (almost) one flat colour"
