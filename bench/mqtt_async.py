"""A paho MQTT 5 client driven by an asyncio loop (socket callbacks, no thread), for the load generator and floor."""

import asyncio
import socket
from collections.abc import Callable

import paho.mqtt.client as mqtt

MISC_INTERVAL_S = 1.0
INFLIGHT = 1000  # as the broker's max_inflight_messages: a QoS 1 window never throttles the generator


class AsyncMqtt:
    """One MQTT connection whose reads, writes and keepalive run as callbacks of the running loop."""

    def __init__(self, host: str, port: int, client_id: str, on_message: Callable[[str, bytes], None] | None = None):
        self.host, self.port = host, port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.connected: asyncio.Future | None = None
        self._misc: asyncio.Task | None = None
        self._wire(on_message)

    def _wire(self, on_message: Callable[[str, bytes], None] | None) -> None:
        client = self.client
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = lambda c, u, sock: asyncio.get_running_loop().add_writer(sock, c.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: asyncio.get_running_loop().remove_writer(sock)
        client.on_connect = self._on_connect
        if on_message is not None:
            client.on_message = lambda c, u, message: on_message(message.topic, message.payload)

    def _socket_open(self, client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paho 2.2 does not (pitfalls.md)
        asyncio.get_running_loop().add_reader(sock, client.loop_read)
        self._misc = asyncio.get_running_loop().create_task(self._misc_loop())

    def _socket_close(self, client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock)
        loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(MISC_INTERVAL_S)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason, props: object) -> None:
        if self.connected is not None and not self.connected.done():
            if reason.is_failure:
                self.connected.set_exception(ConnectionError(f"broker refused {client._client_id!r}: {reason}"))
            else:
                self.connected.set_result(True)

    async def connect(self, timeout: float = 10.0) -> "AsyncMqtt":
        """Connect (clean start) and wait for the CONNACK."""
        self.connected = asyncio.get_running_loop().create_future()
        self.client.connect(self.host, self.port, keepalive=60, clean_start=True)
        await asyncio.wait_for(self.connected, timeout)
        return self

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """QoS 1 publish, not retained."""
        return self.client.publish(topic, payload, qos=1)

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe to each topic at QoS 1."""
        self.client.subscribe([(topic, 1) for topic in topics])

    async def close(self) -> None:
        """Disconnect cleanly and let the loop flush the DISCONNECT."""
        self.client.disconnect()
        await asyncio.sleep(0.05)
