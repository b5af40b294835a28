"""Open a Snakemake HTML report in headless Chromium and use it as a reader would.

The browser is Debian's ``chromium``, driven over the Chrome DevTools Protocol on a pipe
(``--remote-debugging-pipe``: NUL-separated JSON on file descriptors 3 and 4), so neither a driver, a port nor a
websocket library is needed, and nothing is downloaded at run time.

``walk_report`` opens every menu view, every result category and subcategory, and every entry of each listing:
it clicks the entry's view button (an image must load with a non-zero size; a table must download with the
bytes of the file it came from, a header and at least one row; a table rendered as HTML must show in a frame of
non-zero size, with the bytes of its file and a table with rows) and its info button (the caption must show).
Every uncaught exception and console error of the page is a problem, and so is an entry that no row reaches.
"""

import base64
import csv
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path


class Unavailable(RuntimeError):
    """No Chromium on this machine."""


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise Unavailable("no `chromium` on PATH (Debian: apt-get install chromium)")


class DevTools:
    """One headless Chromium and its DevTools connection over a pipe."""

    def __init__(self, binary, profile_dir):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # the child's ends, moved to 10 and above so that bash can put them on 3 and 4 without clobbering one
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome_r, from_chrome_w))
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--window-size=1400,1000",
                f"--user-data-dir={profile_dir}", "--remote-debugging-pipe"]
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        self.log = Path(profile_dir) / "chromium.log"  # a file, not a pipe: a full pipe would stall Chromium
        # Chromium reads commands from fd 3 and writes replies to fd 4 (bash: dash takes one-digit fds only)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$0" "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-', *args],
                pass_fds=(child_r, child_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        for fd in (child_r, child_w):
            os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events = []  # (sessionId or None, method, params), in arrival order

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    err = self.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()}): {err}")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=30):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply is None:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append((reply.get("sessionId"), reply["method"], reply.get("params", {})))

    def pump(self, seconds):
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (msg := self._read_message(deadline)) is not None:
            if "method" in msg:
                self.events.append((msg.get("sessionId"), msg["method"], msg.get("params", {})))


class ReportPage:
    """The report in one tab: JavaScript evaluation, clicks, and the page's errors."""

    def __init__(self, devtools, download_dir):
        self.dt = devtools
        self.download_dir = Path(download_dir)
        self.dt.send("Browser.setDownloadBehavior",
                     {"behavior": "allow", "downloadPath": str(self.download_dir), "eventsEnabled": True})
        target = self.dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.dt.send(f"{domain}.enable", session=self.session)

    def open(self, html):
        self.dt.events.clear()
        self.dt.send("Page.navigate", {"url": Path(html).resolve().as_uri()}, session=self.session)
        self.wait_for(lambda: self.has_event("Page.loadEventFired"), "the page's load event", timeout=60)
        self.wait_js("document.querySelector('nav ul') !== null", "the report's menu")

    def has_event(self, method):
        self.dt.pump(0)
        return any(m == method for _, m, _ in self.dt.events)

    def js(self, expression):
        """Evaluate ``expression`` in the page and return its (JSON) value."""
        reply = self.dt.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                  "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]}...: {reply['exceptionDetails'].get('text')} "
                               f"{reply['exceptionDetails'].get('exception', {}).get('description', '')}")
        return reply["result"].get("value")

    def wait_for(self, predicate, what, timeout=10):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {what}")
            self.dt.pump(0.05)

    def wait_js(self, expression, what, timeout=10):
        self.wait_for(lambda: self.js(f"Boolean({expression})"), what, timeout)

    def errors(self):
        """Uncaught exceptions, console errors and browser log errors so far."""
        self.dt.pump(0)
        out = []
        for session, method, p in self.dt.events:
            if session != self.session:
                continue
            if method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                out.append(f"console.{p['type']}: {text}")
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"browser log error: {p['entry']['text']} ({p['entry'].get('url', '')})")
        return out

    def click(self, selector_js, what, timeout=10):
        """Click the element that ``selector_js`` (an expression) yields, once it is there."""
        self.wait_js(f"document.contains({selector_js} || null)", what, timeout)
        self.js(f"({selector_js}).click()")


def _nav_link(text):
    """An expression: the navigation bar's link whose text is ``text``."""
    return (f"[...document.querySelectorAll('nav a')].find(a => a.textContent.trim() === {json.dumps(text)})")


HOME = "document.querySelector('nav ol li a')"  # the first breadcrumb: back to the menu
ROWS = "document.querySelectorAll('nav table tbody tr')"


def _table_rows(data, name):
    """The number of data rows of a CSV table; an error if it has none or rows of different widths."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if len(rows) < 2:
        raise AssertionError(f"{name}: the table has no rows ({len(rows)} lines)")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or rows[0] == [""]:
        raise AssertionError(f"{name}: ragged or empty table (row widths {sorted(widths)})")
    return len(rows) - 1


def walk_report(html, download_dir, results_root, binary=None, profile_dir=None):
    """Visit every view, category, subcategory and entry of the report ``html``.

    ``results_root`` resolves the report's (possibly relative) result paths to the files on disk. Returns
    ``(problems, visited)``: the list of problems (empty when the report works) and, per result path, what was
    checked.
    """
    binary = binary or find_chromium()
    download_dir = Path(download_dir)
    download_dir.mkdir(parents=True, exist_ok=True)
    profile_dir = profile_dir or download_dir.parent / "chromium-profile"
    dt = DevTools(binary, profile_dir)
    problems, visited = [], {}
    try:
        page = ReportPage(dt, download_dir)
        page.open(html)
        problems.extend(f"opening the report: {e}" for e in page.errors())
        results = page.js("results")
        categories = page.js("categories")
        if not categories:
            problems.append("the report has no result categories")

        def step(where, action):
            """Run ``action``; record its failure and the page's new errors under ``where``."""
            seen = len(page.errors())
            value = None
            try:
                value = action()
            except Exception as exc:  # a view that does not render: record and go on with the next
                problems.append(f"{where}: {type(exc).__name__}: {exc}")
            page.dt.pump(0.1)
            problems.extend(f"{where}: {e}" for e in page.errors()[seen:])
            if page.js("document.querySelector('nav ul, nav table') === null"):
                problems.append(f"{where}: the page went blank")
                page.open(html)  # start afresh, so that one broken view does not hide the others
            return value

        def open_listing(category, subcategory):
            page.click(HOME, "home breadcrumb")
            # Snakemake's menu lists each category by name, but a report with one category shows it as "Results"
            item = "Results" if len(categories) == 1 else category
            page.click(_nav_link(item), f"menu item {item!r}")
            if len(categories[category]) > 1:
                page.click(_nav_link(subcategory), f"subcategory {subcategory!r}")
            page.wait_js(f"{ROWS}.length > 0 || document.querySelector('nav') === null", "the listing's rows")
            if page.js("document.querySelector('nav') === null"):
                raise AssertionError("the listing does not render")
            return page.js(f"{ROWS}.length")

        for view in ("Workflow", "Statistics", "About"):
            step(f"view {view!r}", lambda view=view: (page.click(HOME, "home breadcrumb"),
                                                      page.click(_nav_link(view), f"menu item {view!r}")))

        for category, subcategories in categories.items():
            for subcategory, paths in subcategories.items():
                where = f"{category} / {subcategory}"
                n_rows = step(where, lambda c=category, s=subcategory: open_listing(c, s)) or 0
                for i in range(n_rows):
                    step(f"{where}, row {i + 1}", lambda c=category, s=subcategory, i=i: _check_row(
                        page, open_listing, c, s, i, results, results_root, visited))
                missing = [p for p in paths if p not in visited]
                if missing:
                    problems.append(f"{where}: no row of the listing reaches {missing}")
    finally:
        dt.close()
    return problems, visited


def _check_row(page, open_listing, category, subcategory, i, results, results_root, visited):
    row = f"{ROWS}[{i}]"
    # the info button: the entry's path, its labels and caption
    open_listing(category, subcategory)
    page.click(f"{row}.querySelectorAll('td:last-child a')[1]", "info button")
    page.wait_js("document.querySelector('nav ul table') !== null", "the entry's info")
    path = page.js("app.state.resultPath")
    entry = results[path]
    if path in visited:
        raise AssertionError(f"two rows lead to {path}")
    caption = page.js("document.querySelector('nav li.prose')?.textContent ?? ''").strip()
    if len(caption) < 20:
        raise AssertionError(f"{path}: no caption shows ({caption!r})")
    visited[path] = {"mime": entry["mime_type"]}

    # the view button of the same row
    open_listing(category, subcategory)
    mime = entry["mime_type"]
    file = Path(results_root, path)
    if mime.startswith("image/"):
        visited[path]["image_px"], _ = _view(page, row, path, entry, file, "img", "?.complete",
                                             "[e.naturalWidth, e.naturalHeight]")
    elif mime == "text/csv":
        target, name = page.download_dir, entry["filename"]
        (target / name).unlink(missing_ok=True)
        page.click(f"{row}.querySelector('td:last-child a')", "view button")
        page.wait_for(lambda: any(m == "Browser.downloadProgress" and p["state"] in ("completed", "canceled")
                                  for _, m, p in page.dt.events), f"the download of {path}")
        done = [p for _, m, p in page.dt.events if m == "Browser.downloadProgress" and p["state"] != "inProgress"]
        page.dt.events[:] = [ev for ev in page.dt.events if ev[1] not in ("Browser.downloadProgress",
                                                                         "Browser.downloadWillBegin")]
        if done[-1]["state"] != "completed" or not (target / name).exists():
            raise AssertionError(f"{path}: the table's download did not complete ({done[-1]})")
        data = (target / name).read_bytes()
        if data != file.read_bytes():
            raise AssertionError(f"{path}: the downloaded table differs from {file}")
        visited[path]["table_rows"] = _table_rows(data, path)
    elif mime == "text/html":  # a table rendered as a page: the report shows it in a frame
        visited[path]["frame_px"], data = _view(page, row, path, entry, file, "iframe", " !== undefined",
                                                "[e.clientWidth, e.clientHeight]")
        rows = data.decode("utf-8").count("<tr>") - 1
        if "<table>" not in data.decode("utf-8") or rows < 1:
            raise AssertionError(f"{path}: the page holds no table with rows")
        visited[path]["table_rows"] = rows
    else:
        raise AssertionError(f"{path}: no check for entries of type {mime}; extend walk_report")


def _view(page, row, path, entry, file, tag, shown_when, size):
    """Click the row's view button and wait until a ``tag`` element shows the entry (its data URI) and
    ``shown_when`` holds; its ``size`` (a JS expression over the element ``e``) must be non-zero and the entry's
    bytes those of ``file``. Returns the size and the bytes."""
    page.click(f"{row}.querySelector('td:last-child a')", "view button")
    shown = f"[...document.querySelectorAll('{tag}')].find(e => e.src === results[{json.dumps(path)}].data_uri)"
    page.wait_js(f"{shown}{shown_when}", f"the view button to show {path}")
    width, height = page.js(f"(e => {size})({shown})")
    if not (width > 0 and height > 0):
        raise AssertionError(f"{path}: the {tag} does not render (size {width}x{height})")
    data = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
    if data != file.read_bytes():
        raise AssertionError(f"{path}: the {tag} differs from {file}")
    return [width, height], data
