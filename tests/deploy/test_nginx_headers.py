"""What Daphne receives through deploy/nginx/pumpstream.conf: Debian's nginx running the site (tests/support/nginx.py
derives the test's copy: only the addresses differ) in front of a recording HTTP server in place of the Daphne.

Pages, /metrics, Socket.IO and the Channels endpoint must all reach Daphne with the browser's Host (Django's
ALLOWED_HOSTS and the Socket.IO same-origin check compare with it), nginx's own view of the client address in
X-Forwarded-For (never the client's), the scheme, and for WebSocket upgrades Upgrade and Connection. With one
of the two servers dead, /socket.io/ (hashed on the session cookie) must still answer every session at once.
"""

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.nginx import NginxProxy
from tests.support.processes import free_port

SPOOFED = "203.0.113.66"  # what a client claims to be in its own X-Forwarded-For
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip


class Recorder(BaseHTTPRequestHandler):
    """Answers 204 to everything and keeps each request's path and headers."""

    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet."""


def upstream_recorder() -> ThreadingHTTPServer:
    """A recording HTTP server on a free loopback port, serving on a thread of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Recording", (Recorder,), {"seen": []}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def through_nginx():
    """(nginx, what the upstream received): nginx in front of one recorder listed as both Daphne."""
    upstream = upstream_recorder()
    port = upstream.server_address[1]
    proxy = NginxProxy([port, port]).start()
    try:
        yield proxy, upstream.RequestHandlerClass.seen
    finally:
        proxy.stop()
        upstream.shutdown()


@pytest.mark.parametrize(("path", "upgrade"), [("/devices/", False), ("/metrics", False),
                                               ("/socket.io/?EIO=4&transport=websocket", True),
                                               ("/ws/devices/", True)])  # fmt: skip
def test_daphne_gets_the_browsers_host_nginxs_client_address_and_the_upgrade(through_nginx, path, upgrade):
    proxy, seen = through_nginx
    client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    client.request("GET", path, headers={"Host": "pumpstream.test", "X-Forwarded-For": SPOOFED,
                                         **(UPGRADE if upgrade else {})})  # fmt: skip
    status = client.getresponse().status
    client.close()
    assert status == 204 and [p for p, _ in seen] == [path], f"nginx answered {status}: {proxy.log_tail()}"
    headers = {name.lower(): value for name, value in seen[0][1].items()}
    assert headers["host"] == "pumpstream.test", f"Daphne got Host {headers['host']!r} for {path}"
    assert headers.get("x-forwarded-for") == "127.0.0.1", f"client address for {path}: {headers.get('x-forwarded-for')}"
    assert headers.get("x-forwarded-proto") == "http", path
    if upgrade:
        assert (headers.get("upgrade"), headers.get("connection")) == ("websocket", "upgrade"), headers
    else:
        assert "upgrade" not in headers and headers.get("connection", "") != "upgrade", headers


def test_a_dead_daphne_s_sessions_are_answered_by_the_other_one_at_once():
    """The hashed upstream with one server down (nothing listens on its port): every session, those hashing to
    the dead one included, is answered by the other at its first request, never with a 502 (nginx's
    `proxy_next_upstream` defaults; `off` answers the first request for the dead server with 502)."""
    upstream = upstream_recorder()
    proxy = NginxProxy([free_port(), upstream.server_address[1]]).start()
    try:
        statuses = []
        for n in range(40):
            client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
            client.request("GET", "/socket.io/?EIO=4&transport=polling", headers={"Cookie": f"sessionid=s{n % 20}"})
            statuses.append(client.getresponse().status)
            client.close()
    finally:
        proxy.stop()
        upstream.shutdown()
    assert statuses == [204] * 40, f"nginx's answers, 20 sessions twice each: {statuses}"
