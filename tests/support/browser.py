"""Debian's headless chromium driven by Playwright, signed in as a test user without typing a password."""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip
LAPTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}


def launch_chromium(playwright):
    """Chromium 156 from Debian (Playwright never downloads a browser here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@contextmanager
def chromium_running() -> Iterator[object]:
    """Chromium for a module's tests, with the ORM usable beside Playwright's event loop meanwhile."""
    from playwright.sync_api import sync_playwright

    with django_db_beside_playwright(), presses_on_steady_controls(), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
_STEADY_USERS: list = []  # one entry (Playwright's own click) per `presses_on_steady_controls` open


@contextmanager
def presses_on_steady_controls() -> Iterator[None]:
    """Playwright's `Locator.click` made as a person presses: on a control that has stood still.

    The pages refuse a pointer's press on a control that appeared or moved in the last 600 ms (`data-settling` on it
    meanwhile; `static/js/steady_press.js`): no one sees and means a control that came under her finger that late.
    Playwright clicks as soon as a control is visible and still for two frames, so a test's click on a button just
    shown (an alarm's Acknowledge, a dialog's confirm) waits a frame for the page to have measured it (a control is
    marked at the frame after it came: without the wait a press raced the mark, review 43), then for it to settle;
    one the page refused all the same (it moved between the wait and the press: `data-refused` counts them) is
    pressed once more, as the page asks, and a second refusal fails the test (a control that moves at every press).
    Tests of the refusal itself press with `page.mouse`, which this leaves alone."""
    from playwright.sync_api import Error, Locator, expect

    click = _STEADY_USERS[0] if _STEADY_USERS else Locator.click  # Playwright's own, however many are open

    def steady_click(self, *args, **kwargs):
        if kwargs.get("force") or kwargs.get("trial"):
            return click(self, *args, **kwargs)
        for _ in range(2):
            self.wait_for(state="visible", timeout=kwargs.get("timeout"))
            self.page.evaluate(NEXT_FRAME)
            expect(self).not_to_have_attribute("data-settling", "true")
            control = self.element_handle()
            refused = control.get_attribute("data-refused")
            click(self, *args, **kwargs)
            try:
                if control.get_attribute("data-refused") == refused:
                    return None
            except Error:  # the press took the page elsewhere: it was made
                return None
        raise AssertionError(f"the page refused two presses of {self}: it moved at each")

    _STEADY_USERS.append(click)  # chromium of a module and the held one of the browser tests overlap in any order
    if len(_STEADY_USERS) == 1:
        Locator.click = steady_click
    try:
        yield
    finally:
        _STEADY_USERS.pop()
        if not _STEADY_USERS:
            Locator.click = click


def signed_in_page(browser, user, url: str, path: str, viewport: dict = LAPTOP, *, init_script: str | None = None,
                   shelf=None):  # fmt: skip
    """A new browser context signed in as `user` (None: signed out), its page opened on `url + path`; `init_script`
    runs in it before the page's own scripts (such as a steppable clock, `tests/support/browser_clock.py`). With a
    `shelf` (`tests/support/page_shelf.py`) and no init script, a kept page of a context of its own, as good as new.

    Each test's database flush deletes the bridge's heartbeat row until its next heartbeat: a page rendered
    in that gap rightly says "monitoring degraded" and shows every heard pump as stale until its next poll
    (5 s), by when a pump heard once is stale for good. So pages are opened on a live bridge.
    """
    from devices.selectors import bridge_status
    from tests.support.bridge import wait_until

    wait_until(lambda: bridge_status()["brokerConnected"], timeout=15,
               message="the bridge's heartbeat never said it holds the broker")  # fmt: skip
    # bypass_csp: the tests' own probes (wait_for_function strings) are evaluated in the page, which the
    # policy rightly forbids; the policy itself is tested without the bypass in test_csp.py.
    cookie = None if user is None else session_cookie(user, url)
    if shelf is not None and init_script is None:
        return shelf.open(cookie, url, path, viewport)
    context = browser.new_context(viewport=viewport, locale="en-GB", bypass_csp=True)
    if cookie is not None:
        context.add_cookies([cookie])
    if init_script is not None:
        context.add_init_script(init_script)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url + path)
    return context, page


def session_cookie(user, base_url: str) -> dict:
    """A signed-in session for `user`, as a Playwright cookie for `base_url`."""
    client = Client()
    client.force_login(user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": base_url}  # fmt: skip


@contextmanager
def django_db_beside_playwright() -> Iterator[None]:
    """Allow ORM calls from the test while Playwright's sync API holds an event loop in this thread."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def screenshot(page, artifacts_dir: Path, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact."""
    path = artifacts_dir / "browser" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def measure(action: Callable[[], object], until: Callable[[], object]) -> float:
    """Seconds from `action` until `until` returns (it must wait by itself, e.g. a Playwright expectation)."""
    started = time.perf_counter()
    action()
    until()
    return time.perf_counter() - started


RATE_REFUSAL = """async ({count, refillMs, request, payload, target, accepted}) => {
    const live = window.pumpstreamLive;
    await new Promise((resolve) => setTimeout(resolve, refillMs));
    const names = (p) => p && (p.deviceId === target || p.ward === target);
    const verdict = new Promise((resolve) => {
        live.socket.on("error", (p) => names(p) && resolve(`refused: ${p.message}`));
        live.socket.on(accepted, (p) => names(p) && (p.full ?? true) && resolve("accepted"));
    });
    for (let n = 0; n < count; n += 1) live.socket.emit("unsubscribe:device", {deviceId: "NOT_WATCHED"});
    if (request === "resubscribe") live.resubscribe(live.devices.get(target));  // as after a missed event
    else live.socket.emit(request, payload);
    return verdict;
}"""


def refused_for_rate(open_live_page, *, request: str, target: str, accepted: str, payload=None, attempts: int = 3):
    """A live page (from `open_live_page()`) that spent its request tokens (`request_drain`), then sent `request`
    for `target` (a pump or a ward; "resubscribe": the page's own resubscription of that pump), which the server
    refused for the rate: the page, its handlers of the refusal run.

    The server's verdict is read from its reply, not assumed from timing: a server that took over 450 ms for the
    drain refilled the bucket and accepted the request (`accepted` came), and the drain is tried again on a fresh
    page (a new connection, no strikes); what the callers test is the page's answer to a refusal."""
    verdicts = []
    for _ in range(attempts):
        page = open_live_page()
        verdict = page.evaluate(RATE_REFUSAL, {**request_drain(), "request": request, "payload": payload,
                                               "target": target, "accepted": accepted})  # fmt: skip
        if verdict.startswith("refused"):
            return page
        verdicts.append(verdict)
        page.context.close()
    raise AssertionError(f"the server never refused {request} for {target} after the drain: {verdicts}")


def request_drain() -> dict:
    """How a page leaves its connection without request tokens: `{"count", "refillMs"}` for a page script that
    waits `refillMs`, sends `count` cheap requests and at once the one that must get "Too many requests".

    The bucket holds REQUEST_BURST tokens and refills at REQUESTS_PER_SECOND while the server works through the
    requests: the wait fills it whatever the page spent, and the burst and 9 more empty it unless the server took
    over 450 ms for them. The 9 refused and the last request are 10 strikes, one short of the connection being
    closed (MAX_MALFORMED).
    """
    from realtime.sio.limits import MAX_MALFORMED, REQUEST_BURST, REQUESTS_PER_SECOND

    return {"count": REQUEST_BURST + MAX_MALFORMED - 1, "refillMs": 1000 * REQUEST_BURST / REQUESTS_PER_SECOND + 500}
