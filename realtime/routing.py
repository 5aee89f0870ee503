"""WebSocket routes served by Channels (Socket.IO has its own path, `/socket.io/`)."""

from django.urls import path

from realtime.consumers import DeviceStreamConsumer

websocket_urlpatterns = [
    path("ws/devices/", DeviceStreamConsumer.as_asgi()),
]
