"""The HTTP and socket edges against a real Daphne: login throttling on both sign-in pages, CSP and
`no-store` headers, undecodable Socket.IO frames and deep nesting on the Channels endpoint.
"""

import functools
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
import websocket

from protocol import events
from realtime.sio.limits import MAX_MALFORMED
from tests.factories import make_device, make_user, make_ward
from tests.support.sio import ChannelsClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HUGE_INT = "9" * 5000
DEEP = "[" * 5000 + "]" * 5000


class SignInPage:
    """One browser (its own cookies) posting passwords to a sign-in form, as an attacker's script would; from
    `source`, another loopback address than 127.0.0.1 (another computer, as Daphne sees it), if given."""

    def __init__(self, base_url: str, path: str, *, source: str | None = None) -> None:
        self.url = f"{base_url}{path}"
        cookies = urllib.request.HTTPCookieProcessor(CookieJar())
        handlers = [cookies, FromAddress(source)] if source else [cookies]
        self.opener = urllib.request.build_opener(*handlers)
        self.posting = urllib.request.build_opener(*handlers, NoRedirect)  # a 302 (signed in) is the answer

    def attempt(self, username: str, password: str) -> tuple[int, str]:
        """(status, page) of one sign-in attempt; 302 means signed in."""
        page = self.opener.open(self.url).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/"}
        request = urllib.request.Request(self.url, data=urllib.parse.urlencode(form).encode(),
                                         headers={"Referer": self.url})  # fmt: skip
        try:
            response = self.posting.open(request)
            return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class FromAddress(urllib.request.HTTPHandler):
    """HTTP from another source address (any 127.x.y.z is this machine's loopback)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def http_open(self, request):
        return self.do_open(functools.partial(http.client.HTTPConnection, source_address=(self.source, 0)), request)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/?next=/admin/"])
def test_sign_in_is_throttled_by_username_and_address(daphne_server, path):
    name = "throttled-" + path.split("/")[1]
    make_user(name, is_staff=True)
    make_user(name + "-colleague", is_staff=True)
    page = SignInPage(daphne_server.url, path)
    for attempt in range(8):
        status, _ = page.attempt(name, f"wrong-{attempt}")
        assert status in (200, 429), f"wrong password {attempt} answered {status}"
    status, body = page.attempt(name, "pw-for-tests-only")
    assert status == 429, (
        f"the right password after 8 wrong ones at {path} answered {status} (signed in: no throttling)"
    )
    assert "Too many wrong passwords" in body, "the lock-out page does not say why"
    status, _ = page.attempt(name + "-colleague", "pw-for-tests-only")
    assert status == 302, "another username from the same address was locked out too"


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/?next=/admin/"])
def test_spraying_one_password_over_many_usernames_locks_the_address_not_the_accounts(daphne_server, path):
    """Review 15, finding 12: counted per (username, address) only, one common password tried for 30 usernames
    from one address was never slowed, and the right password for a 31st signed in."""
    make_user("j.smith", is_staff=True)
    page = SignInPage(daphne_server.url, path)
    for n in range(30):
        status, _ = page.attempt(f"user{n:03d}", "Winter2026!")
        assert status in (200, 429), f"wrong password {n} answered {status}"
    status, body = page.attempt("j.smith", "pw-for-tests-only")
    assert status == 429, (
        f"after 30 wrong passwords for 30 usernames from one address the next sign-in answered {status} "
        f"(302: signed in): password spraying is not throttled"
    )
    assert "from this computer" in body and "several usernames" in body, "the lock-out page does not say why"
    status, _ = SignInPage(daphne_server.url, path, source="127.0.0.2").attempt("j.smith", "pw-for-tests-only")
    assert status == 302, "the account was locked with the address: from another computer it did not sign in"


def test_pages_and_api_carry_csp_and_no_store(daphne_server):
    icu = make_ward("icu")
    make_device("PUMP_EDGE_1", ward=icu)
    cookie = session_cookie(make_user("edge-nurse", ward=icu))
    for path in ("/", "/devices/PUMP_EDGE_1/", "/api/devices/PUMP_EDGE_1/events/", "/accounts/login/"):
        request = urllib.request.Request(f"{daphne_server.url}{path}", headers={"Cookie": cookie})
        response = urllib.request.urlopen(request)
        cache = response.headers.get("Cache-Control", "")
        assert "no-store" in cache, f"{path} may be stored by the browser or a proxy: Cache-Control {cache!r}"
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, f"{path}: CSP {policy!r}"


def raw_socketio(url: str, cookie: str) -> websocket.WebSocket:
    """A raw Engine.IO v4 websocket, connected to the default namespace: frames go out exactly as written."""
    ws = websocket.create_connection(url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                     header=[f"Cookie: {cookie}"], timeout=5)  # fmt: skip
    assert ws.recv().startswith("0"), "no Engine.IO open packet"
    ws.send("40")
    assert ws.recv().startswith("40"), "not connected to the default namespace"
    return ws


def frames_until_closed(ws: websocket.WebSocket, frames: list[str]) -> tuple[list[str], bool]:
    """Send the frames, then read until the server closes; (Socket.IO events received, closed)."""
    received: list[str] = []
    try:
        for frame in frames:
            ws.send(frame)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            frame = ws.recv()
            if not frame:
                return received, True
            if frame.startswith("42"):
                received.append(json.loads(frame[2:])[0])
            elif frame.startswith("41"):
                return received, True
    except websocket.WebSocketTimeoutException:  # the socket's read timeout: still open, not closed
        return received, False
    except (websocket.WebSocketException, OSError):
        return received, True
    return received, False


def test_undecodable_socketio_frames_are_strikes_without_tracebacks(daphne_server):
    icu = make_ward("icu")
    cookie = session_cookie(make_user("frame-fuzzer", ward=icu))
    log_before = daphne_server.log_path.read_text(errors="replace").count("Traceback")
    bad = [f'42["{events.SUBSCRIBE_DEVICE}",{{"deviceId":{HUGE_INT}}}]', f'42["{events.SUBSCRIBE_DEVICE}",{DEEP}]']
    received, closed = frames_until_closed(raw_socketio(daphne_server.url, cookie), bad * 10)
    assert closed, f"20 undecodable frames did not get the connection closed (events: {received})"
    assert received.count(events.ERROR) >= 10, f"undecodable frames were not answered with error: {received}"
    time.sleep(0.5)
    log_after = daphne_server.log_path.read_text(errors="replace").count("Traceback")
    assert log_after == log_before, f"{log_after - log_before} tracebacks written for undecodable frames"


def test_event_names_that_are_not_strings_are_strikes_that_close_the_connection(daphne_server):
    """`42[123]`: python-socketio hands the handler the number as the event's name. Its refusal echoed it into
    `error`'s `request` (a string), the model refused that, and the catch-all's "Internal error" kept the
    connection open past the strike limit, a traceback logged per frame."""
    cookie = session_cookie(make_user("name-fuzzer", ward=make_ward("icu")))
    log_before = daphne_server.log_path.read_text(errors="replace").count("Traceback")
    received, closed = frames_until_closed(raw_socketio(daphne_server.url, cookie), ["42[123]", '42[{"a":1},{}]'] * 10)
    assert closed and received.count(events.ERROR) <= MAX_MALFORMED + 1, (
        f"the connection kept answering past {MAX_MALFORMED + 1} requests with a non-string name: {received}"
    )
    time.sleep(0.5)
    log_after = daphne_server.log_path.read_text(errors="replace").count("Traceback")
    assert log_after == log_before, f"{log_after - log_before} tracebacks written for non-string event names"


def test_deep_nesting_on_the_channels_endpoint_is_a_strike_not_an_error(daphne_server):
    icu = make_ward("icu")
    make_device("PUMP_EDGE_2", ward=icu)
    client = ChannelsClient(daphne_server.url, cookie=session_cookie(make_user("deep-nester", ward=icu)))
    try:
        log_before = daphne_server.log_path.read_text(errors="replace").count("RecursionError")
        client.socket.send('{"event": "subscribe:device", "data": ' + "[" * 3000 + "]" * 3000 + "}")
        client.events.wait_for(lambda e, d: e == events.ERROR, timeout=5)
        client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_EDGE_2"})
        client.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED, timeout=5)
        for _ in range(11):
            client.socket.send("[" * 3000)
        assert client.closed.wait(5), "11 more malformed frames did not close the Channels connection"
        log_after = daphne_server.log_path.read_text(errors="replace").count("RecursionError")
        assert log_after == log_before, "a RecursionError escaped on the Channels endpoint"
    finally:
        client.close()


HOSTILE_COOKIE = 'sessionid="' + "\\" * 15000 + '"'  # 15 KB of escaped backslashes: inside Twisted's 16 KiB


def anonymous_connect(base_url: str, cookie: str) -> None:
    """An Engine.IO websocket with the cookie, then a Socket.IO CONNECT to "/" (refused either way: no sign-in)."""
    url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    try:
        ws = websocket.create_connection(url, header=[f"Cookie: {cookie}"], timeout=30)
    except websocket.WebSocketBadStatusException:
        return  # refused at the handshake
    try:
        ws.recv()  # the Engine.IO open packet
        ws.send("40")
        ws.recv()  # the refusal
    finally:
        ws.close()


def test_anonymous_connects_with_a_hostile_cookie_do_not_stall_the_server(daphne_server):
    """Review 15, finding 11: the Socket.IO connect handler read the cookie with `http.cookies` on the event loop,
    quadratic on backslashes on Python 3.11.7 (CVE-2024-7592): a health check took 3.18 s under 12 such connects."""

    def healthz_seconds() -> float:
        started = time.monotonic()
        urllib.request.urlopen(f"{daphne_server.url}/healthz", timeout=60).read()
        return time.monotonic() - started

    quiet = min(healthz_seconds() for _ in range(3))
    attackers = [
        threading.Thread(target=anonymous_connect, args=(daphne_server.url, HOSTILE_COOKIE)) for _ in range(12)
    ]
    for thread in attackers:
        thread.start()
    time.sleep(0.2)
    under_attack = healthz_seconds()
    for thread in attackers:
        thread.join(timeout=60)
    assert under_attack < 0.5, (
        f"a health check took {under_attack:.2f} s (quiet: {quiet * 1000:.0f} ms) while 12 anonymous clients connected "
        f"with a 15 KB Cookie header: Daphne's event loop, which delivers every alarm, was busy reading it"
    )


def handshake_status(url: str, cookie: str) -> int:
    """The HTTP status a WebSocket handshake with this Cookie header got (101: accepted)."""
    try:
        websocket.create_connection(url, header=[f"Cookie: {cookie}"], timeout=5).close()
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    return 101


def test_a_cookie_header_over_the_limit_is_refused_on_every_road(daphne_server):
    """Over `COOKIE_HEADER_MAX_BYTES` (4 KiB) no road reads the header: Django's own `parse_cookie` (every page's
    `request.COOKIES`) unquotes with the same quadratic `http.cookies._unquote`. A signed-in nurse's header padded
    with other cookies below the limit still connects."""
    cookie = session_cookie(make_user("cookie-nurse", ward=make_ward("icu")))
    oversized = cookie + "; pad=" + "x" * 4096
    request = urllib.request.Request(f"{daphne_server.url}/healthz", headers={"Cookie": oversized})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 431, f"an oversized Cookie header on a page answered {refused.value.code}"
    ws_url = daphne_server.url.replace("http://", "ws://")
    for path in ("/socket.io/?EIO=4&transport=websocket", "/ws/devices/"):
        assert handshake_status(ws_url + path, oversized) == 403, f"{path} accepted an oversized Cookie header"
    raw_socketio(daphne_server.url, cookie + "; pad=" + "x" * 3000).close()
