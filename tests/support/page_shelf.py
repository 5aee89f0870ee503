"""Browser pages kept from one test to the next: a signed-in page cost chromium and Daphne about 1.1 s of CPU in a
new context and 0.4 s when a kept page was navigated again (its renderer stays; 2026-12-07, 10 pages, 3 rounds), and
the browser tests open hundreds of pages on a CPU-bound run.

A kept page is one whose test left nothing behind that outlives its document and that the shelf cannot undo (init
scripts, exposed functions, listeners, clocks, emulation, extra pages, CDP sessions: `marked_methods`, watched while
a shelf is open; routes and the offline switch are undone), still open and alone in its context. At the test's end
such a page is taken to a plain same-origin document (the static protocol module: no scripts of ours run, so its
socket closes and its timers stop), its tab's sessionStorage and the origin's localStorage are emptied, its cookies
cleared, the pointer moved off it, its console and error lists emptied, and a frame is asked of it (a page whose
`requestAnimationFrame` never answers is thrown away: an earlier context pool met such pages); opened again, its
history is reset to the test's first page. Anything else goes with its context, as every page did before.
"""

import contextlib
import functools
import logging

import pytest

PLAIN_DOCUMENT = "/static/js/protocol.js"
ANSWERS_A_FRAME = """() => new Promise((done) => {
    requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
    setTimeout(() => done(false), 2000);
})"""
FORGET_STORAGE = "() => { sessionStorage.clear(); localStorage.clear(); return location.pathname; }"
KEPT_PER_VIEWPORT = 2
# What a kept page still tells of the tests before it: Playwright's list of its last requests. No test may use it.
CARRIED = ("requests",)
MAX_USES = 25  # then a new renderer: one kept for hundreds of tests would gather what a page's documents leave
PAGE_WIDE = ("set_viewport_size", "emulate_media", "add_locator_handler", "pause", "drag_and_drop", "pick_locator")
CONTEXT_WIDE = ("new_page", "new_cdp_session", "grant_permissions", "set_geolocation", "set_default_timeout",
                "set_storage_state")  # fmt: skip
logger = logging.getLogger(__name__)
TEST_PASSED = pytest.StashKey[bool]()  # on a test's item once its body ran (tests/conftest.py)


def marked_methods() -> dict:
    """The Playwright methods whose effect outlives a page's document, by class: `(cls, name) -> undone`, whether
    the shelf undoes it (routes, offline) or throws the page away."""
    from playwright.sync_api import BrowserContext, Keyboard, Locator, Mouse, Page
    from playwright.sync_api._generated import (  # not exported: what `page.clock`, `context.tracing`... are
        Clock,
        Credentials,
        Debugger,
        Screencast,
        Tracing,
        WebMCP,
    )

    shared = ("route_from_har", "route_web_socket", "add_init_script", "expose_function", "expose_binding",
              "set_extra_http_headers", "on", "once", "set_default_navigation_timeout")  # fmt: skip
    tainting = {
        Page: (*shared, *PAGE_WIDE),
        BrowserContext: (*shared, *CONTEXT_WIDE),
        Clock: ("install", "fast_forward", "pause_at", "resume", "run_for", "set_fixed_time", "set_system_time"),
        Keyboard: ("down",),
        Mouse: ("down",),
        Locator: ("drag_to",),  # a drag that fails half-way leaves the button pressed
        Tracing: ("start", "start_chunk", "start_har"),
    } | {cls: public_methods(cls) for cls in (Credentials, Debugger, Screencast, WebMCP)}  # any use
    undone = {(Page, "route"): True, (BrowserContext, "route"): True, (BrowserContext, "set_offline"): True}
    return {(cls, name): False for cls, names in tainting.items() for name in names} | undone


def public_methods(cls) -> tuple[str, ...]:
    """The methods of a Playwright class a test may call (its events' `on`/`once`/`remove_listener` included)."""
    return tuple(name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))
                 and not isinstance(getattr(cls, name), property))  # fmt: skip


class Marks:
    """What the running test did that outlives a page's document: one for the process (a test uses one shelf), the
    methods wrapped while any shelf is open. `tainted`: something the shelf cannot undo; `undoable`: something it
    can (routes, the offline switch)."""

    def __init__(self) -> None:
        self.tainted = False
        self.undoable = False
        self.open_shelves = 0
        self.originals: dict[tuple, object] = {}

    def shelf_opened(self) -> None:
        self.open_shelves += 1
        if self.open_shelves == 1:
            for (cls, name), undone in marked_methods().items():
                self.originals[(cls, name)] = getattr(cls, name)
                setattr(cls, name, self._marking(self.originals[(cls, name)], undone))

    def shelf_closed(self) -> None:
        self.open_shelves -= 1
        if self.open_shelves == 0:
            for (cls, name), original in self.originals.items():
                setattr(cls, name, original)
            self.originals.clear()

    def test_started(self) -> None:
        self.tainted = False
        self.undoable = False

    def unmarked(self, cls, name: str):
        """`cls.name` as Playwright has it, for the shelf's own calls."""
        return self.originals.get((cls, name), getattr(cls, name))

    def _marking(self, method, undone: bool):
        @functools.wraps(method)
        def marked(*args, **kwargs):
            if undone:
                self.undoable = True
            else:
                self.tainted = True
            return method(*args, **kwargs)

        return marked


MARKS = Marks()


class PageShelf:
    """Signed-in pages on one chromium: `test_started()`, then `open(cookie, url, path, viewport)` as the test asks,
    and `test_ended(url, passed)` after it; `close()` with the browser."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self.kept: dict[tuple, list] = {}  # viewport key -> [(context, page, uses)]
        self.lent: list[tuple] = []  # (viewport key, context, page, uses) opened in the running test
        self.reused = self.opened = self.discarded = 0
        MARKS.shelf_opened()

    def test_started(self) -> None:
        MARKS.test_started()

    def open(self, cookie: dict | None, url: str, path: str, viewport: dict):
        """A page of a context of its own holding only `cookie`, opened on `url + path`: a kept one if any."""
        from playwright.sync_api import BrowserContext

        key = (viewport["width"], viewport["height"])
        context, page, uses = self._kept_open(key) or (None, None, 0)
        if page is None:
            context = self.browser.new_context(viewport=viewport, locale="en-GB", bypass_csp=True)
            page = MARKS.unmarked(BrowserContext, "new_page")(context)
            self.opened += 1
        else:
            self.reused += 1
        if cookie is not None:
            context.add_cookies([cookie])
        self.lent.append((key, context, page, uses + 1))
        page.set_default_timeout(15_000)
        page.goto(url + path)
        if uses:  # a new page's history: this document alone (the plain one before it is no page of this test's)
            history = MARKS.unmarked(BrowserContext, "new_cdp_session")(context, page)
            history.send("Page.resetNavigationHistory")
            history.detach()
        return context, page

    def _kept_open(self, key: tuple) -> tuple | None:
        """A kept page of this size whose renderer still lives, if any."""
        while self.kept.get(key):
            context, page, uses = self.kept[key].pop()
            if not page.is_closed():
                return context, page, uses
            self._discard(context)
        return None

    def test_ended(self, url: str, passed: bool) -> None:
        """Keep the pages of a test that passed and left nothing the shelf cannot undo; close the rest."""
        lent, self.lent = self.lent, []
        keep = passed and not MARKS.tainted
        for key, context, page, uses in lent:
            kept = self.kept.setdefault(key, [])
            if keep and uses < MAX_USES and len(kept) < KEPT_PER_VIEWPORT and self._reset(context, page, url):
                kept.append((context, page, uses))
            else:
                self._discard(context)
        MARKS.test_started()

    def _reset(self, context, page, url: str) -> bool:
        """The page on the plain document, its storage, cookies and pointer as a new page's; whether it answers."""
        from playwright.sync_api import Error

        if page.is_closed() or len(context.pages) != 1:
            return False
        try:
            if MARKS.undoable:  # away first: a request its routes hold must not be let go to the server, nor a page
                page.goto("about:blank", timeout=5_000)  # back online reconnect, after the test
                page.unroute_all(behavior="ignoreErrors")
                context.unroute_all(behavior="ignoreErrors")
                context.set_offline(False)
            page.goto(url + PLAIN_DOCUMENT, timeout=5_000)
            forgotten = page.evaluate(FORGET_STORAGE) == PLAIN_DOCUMENT
            page.mouse.move(-1, -1)  # off the page, as Playwright's own reuse leaves it
            page.clear_console_messages()
            page.clear_page_errors()
            answers = page.evaluate(ANSWERS_A_FRAME)
            context.clear_cookies()
        except Error:
            return False
        return forgotten and answers

    def _discard(self, context) -> None:
        from playwright.sync_api import Error

        self.discarded += 1
        with contextlib.suppress(Error):
            context.close()

    def close(self) -> None:
        try:
            for _, context, _, _ in self.lent:
                self._discard(context)
            for pages in self.kept.values():
                for context, _, _ in pages:
                    self._discard(context)
        finally:
            self.kept.clear()
            self.lent.clear()
            MARKS.shelf_closed()
        logger.info("pages: %d opened, %d reused, %d closed", self.opened, self.reused, self.discarded)
