"""WebSocket routes served by Channels (Socket.IO has its own path, `/socket.io/`)."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from realtime.consumers import DeviceStreamConsumer

CLOSE_NOT_FOUND = 4404


class NoSuchEndpoint(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused quietly (Channels' router raised, and Daphne logged a traceback each time)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)


websocket_urlpatterns = [
    path("ws/devices/", DeviceStreamConsumer.as_asgi()),
    re_path(r"", NoSuchEndpoint.as_asgi()),  # last: everything else
]
