"""The one ASGI application Daphne serves, split by the listener a connection arrived on.

Public listener: `/socket.io/` to python-socketio (the client namespace only), HTTP to Django (static files
through WhiteNoise), other WebSockets to the Channels JSON endpoint (`/ws/devices/`), which authenticates
like Socket.IO (session cookie or API token). Internal listener (loopback, `REALTIME_INTERNAL_PORT`): only
the bridge's road (`realtime/sio/internal.py`); everything else there is 404. On both, a `Cookie` header over
`COOKIE_HEADER_MAX_BYTES` is refused first (`pumpstream/cookie_limit.py`), and every WebSocket is closed once more
than `SOCKET_UNSENT_MAX_BYTES` waits unsent for a client that does not read (`realtime/slow_readers.py`).
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpstream.settings")
django_http = get_asgi_application()

# Django must be set up before these imports.
import socketio  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from pumpstream.cookie_limit import cookie_header_limited  # noqa: E402
from realtime import consumers  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from realtime.sio import server as realtime_server  # noqa: E402
from realtime.sio.internal import arrived_on_internal_listener  # noqa: E402
from realtime.slow_readers import websocket_unsent_bounded  # noqa: E402

realtime_server.install()
consumers.install()

public_application = socketio.ASGIApp(
    realtime_server.sio,
    other_asgi_app=ProtocolTypeRouter({"http": django_http, "websocket": URLRouter(websocket_urlpatterns)}),
    socketio_path="socket.io",
)
internal_application = socketio.ASGIApp(realtime_server.internal_sio, socketio_path="socket.io")

# The start-up objects (Django, the app, python-socketio: a few hundred thousand) leave the collector's scans.
# Without this, each full collection of Daphne's heap stopped its one event loop for 130-220 ms, twice in a
# 15 s run at 400 msg/s (gc callbacks, bench/README.md session 7): every delivery meanwhile waited.
gc.freeze()


async def listener_application(scope, receive, send):
    """Route a connection by its listener: the internal road only on the internal one."""
    if scope["type"] in ("http", "websocket") and arrived_on_internal_listener(scope):
        return await internal_application(scope, receive, send)
    return await public_application(scope, receive, send)


# An oversized `Cookie` header is refused before any road reads it (`pumpstream/cookie_limit.py`); a WebSocket whose
# client does not read is closed once too much waits unsent for it (`realtime/slow_readers.py`: Daphne's `send`).
application = websocket_unsent_bounded(cookie_header_limited(listener_application))
