"""The bare Python stack relay: paho -> python-socketio rooms under Daphne, no database, no Django, no auth.

    BENCH_BROKER=127.0.0.1:1883 .venv/bin/daphne -b 127.0.0.1 -p 9001 bench.bare_relay:app

The floor of the libraries PumpStream is built on (a comparison for `make bench`, `bench/compare.py`): each
progress report (`devices/<id>/progress`) becomes `device:progress {deviceId, progress}` in the room
`device:<id>`, an alarm (`devices/<id>/error`) `device:alarm {deviceId, alarm}`; `subscribe:device`
joins the room and answers `stream:subscribed`. paho runs its own network thread (as the bridge's does)
and hands each message to the server's loop.
"""

import asyncio
import json
import logging
import os
import socket

import paho.mqtt.client as mqtt
import socketio

logger = logging.getLogger(__name__)

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=None, logger=False, engineio_logger=False)
app = socketio.ASGIApp(sio)
_loop: asyncio.AbstractEventLoop | None = None


@sio.event
async def connect(sid: str, environ: dict, auth: object = None) -> None:
    """Capture the loop on the first connection (Daphne sends no lifespan) and start the MQTT link."""
    global _loop
    if _loop is None:
        _loop = asyncio.get_running_loop()
        _link_start()


@sio.on("subscribe:device")
async def subscribe_device(sid: str, data: object) -> None:
    """Join the pump's room and confirm."""
    device_id = data.get("deviceId") if isinstance(data, dict) else None
    if isinstance(device_id, str):
        await sio.enter_room(sid, f"device:{device_id}")
        await sio.emit("stream:subscribed", {"deviceId": device_id, "room": f"device:{device_id}"}, to=sid)


def _on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
    _, device_id, kind = message.topic.split("/", 2)
    try:
        body = json.loads(message.payload)
    except ValueError:
        return
    event, key = ("device:progress", "progress") if kind == "progress" else ("device:alarm", "alarm")
    asyncio.run_coroutine_threadsafe(sio.emit(event, {"deviceId": device_id, key: body}, room=f"device:{device_id}"),
                                     _loop)  # fmt: skip


def _on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.subscribe([("devices/+/progress", 1), ("devices/+/error", 1)])


def _link_start() -> None:
    host, port = os.environ.get("BENCH_BROKER", "127.0.0.1:1883").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-bare-relay-{os.getpid()}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.on_connect, client.on_message = _on_connect, _on_message
    client.connect(host, int(port))
    client.loop_start()
