"""The `Cookie` header's size limit, applied to every connection before any code reads the header.

Anyone may send a `Cookie` header, signed in or not. Python 3.11.7's `http.cookies._unquote` (which Django's
`request.COOKIES` uses too) is quadratic on backslashes in a quoted value (CVE-2024-7592, fixed in 3.11.10):
15 KB cost 0.3 s of CPU. Refused here, by length alone, the header never reaches a parser.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from prometheus_client import Counter

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OVERSIZED_REFUSED = Counter(
    "pumpstream_cookie_header_refused_total", "Requests and handshakes refused for a Cookie header over the limit"
)
REFUSAL = b"Request Header Fields Too Large: the Cookie header is over this site's limit.\n"


def cookie_header_bytes(scope: Scope) -> int:
    """The length of every `Cookie` header of a request together (a client may send several)."""
    return sum(len(value) for name, value in scope.get("headers", ()) if name.lower() == b"cookie")


def cookie_header_limited(app: ASGIApp) -> ASGIApp:
    """`app`, with HTTP requests (431) and WebSocket handshakes (403) over `COOKIE_HEADER_MAX_BYTES` refused."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or cookie_header_bytes(scope) <= settings.COOKIE_HEADER_MAX_BYTES:
            return await app(scope, receive, send)
        OVERSIZED_REFUSED.inc()
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; a close before the accept refuses the handshake
            await send({"type": "websocket.close", "code": 1008})
            return None
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(REFUSAL)).encode())]
        await send({"type": "http.response.start", "status": 431, "headers": headers})
        await send({"type": "http.response.body", "body": REFUSAL})
        return None

    return application
