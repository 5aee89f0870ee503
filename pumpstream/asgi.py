"""The one ASGI application Daphne serves: `/socket.io/` to python-socketio, HTTP to Django, WebSocket to Channels.

HTTP goes to Django (static files through WhiteNoise); WebSockets outside `/socket.io/` go to the
Channels JSON endpoint (`/ws/devices/`), which authenticates like Socket.IO (session cookie or API token).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpstream.settings")
django_http = get_asgi_application()

# Django must be set up before these imports.
import socketio  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime import consumers  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from realtime.sio import server as realtime_server  # noqa: E402

realtime_server.install()
consumers.install()

application = socketio.ASGIApp(
    realtime_server.sio,
    other_asgi_app=ProtocolTypeRouter({"http": django_http, "websocket": URLRouter(websocket_urlpatterns)}),
    socketio_path="socket.io",
)
