"""One pump's MQTT connection on the asyncio loop: paho driven from socket callbacks, no thread per pump."""

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.mqtt_client import make_client, set_tcp_nodelay
from realtime.simulator.messages import Message

logger = logging.getLogger(__name__)

MISC_INTERVAL_S = 1.0
RECONNECT_DELAY_S = 1.0
SESSION_EXPIRY_S = 3600


@dataclass(frozen=True)
class LinkOptions:
    """How a pump connects: MQTT version, session, Last Will, keepalive."""

    client_id: str
    protocol: int = mqtt.MQTTv5
    will: Message | None = None
    persistent_session: bool = True
    keepalive_s: int = 30


class PumpLink:
    """A paho client whose reads, writes and housekeeping run as asyncio callbacks (paho's asyncio pattern)."""

    def __init__(
        self,
        options: LinkOptions,
        broker: dict,
        *,
        on_connected: Callable[[], None],
        on_message: Callable[[str, bytes], None],
    ) -> None:
        self.options = options
        self.broker = broker
        self.on_connected = on_connected
        self.on_message = on_message
        self.client = make_client(options.client_id, protocol=options.protocol, broker=broker)
        self.connected = False
        self.wanted = False  # whether the pump wants to be online (False after `offline` or close)
        self._misc_task: asyncio.Task | None = None
        self._reconnect_task: asyncio.Task | None = None
        self._wire_callbacks()
        if options.will is not None:
            will = options.will
            self.client.will_set(will.topic, will.encoded(), qos=will.qos, retain=will.retain)

    def _wire_callbacks(self) -> None:
        client = self.client
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = lambda c, u, sock: asyncio.get_running_loop().add_writer(sock, c.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: asyncio.get_running_loop().remove_writer(sock)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = lambda c, u, msg: self.on_message(msg.topic, msg.payload)

    def _socket_open(self, client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
        asyncio.get_running_loop().add_reader(sock, client.loop_read)
        self._misc_task = asyncio.get_running_loop().create_task(self._misc_loop())

    def _socket_close(self, client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock)
        loop.remove_writer(sock)
        if self._misc_task is not None:
            self._misc_task.cancel()

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(MISC_INTERVAL_S)

    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("broker refused the pump: %s", reason, extra={"device_id": self.options.client_id})
            return
        set_tcp_nodelay(client)
        self.connected = True
        self.on_connected()

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object):
        self.connected = False
        logger.info("pump disconnected: %s", reason, extra={"device_id": self.options.client_id})
        if self.wanted and self._reconnect_task is None:
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect_later())

    async def _reconnect_later(self) -> None:
        try:
            while self.wanted and not self.connected:
                await asyncio.sleep(RECONNECT_DELAY_S)
                if self.wanted and not self.connected:
                    self._open()
        finally:
            self._reconnect_task = None

    def _open(self) -> bool:
        """Open the TCP connection and send CONNECT; False (and logged) when the broker is unreachable."""
        v5 = self.options.protocol == mqtt.MQTTv5
        properties = None
        if v5 and self.options.persistent_session:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self.client.connect(
                self.broker["HOST"], int(self.broker["PORT"]), keepalive=self.options.keepalive_s,
                clean_start=not self.options.persistent_session if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )  # fmt: skip
        except OSError as exc:
            logger.warning("cannot reach the broker: %s", exc, extra={"device_id": self.options.client_id})
            return False
        return True

    def start(self) -> None:
        """Connect now (a short blocking TCP connect), and keep reconnecting while wanted."""
        self.wanted = True
        if not self._open() and self._reconnect_task is None:
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect_later())

    def publish(self, message: Message) -> None:
        """Publish; QoS 1 messages sent while disconnected are queued by paho and sent on reconnect."""
        self.client.publish(message.topic, message.encoded(), qos=message.qos, retain=message.retain)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe (call from `on_connected`)."""
        self.client.subscribe(topic, qos=qos)

    def drop(self) -> None:
        """Lose the connection without DISCONNECT, so the broker publishes the Last Will; stay offline."""
        self.wanted = False
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Say goodbye (the Last Will's message, as a switched-off pump would) and disconnect cleanly."""
        self.wanted = False
        if self.connected:
            if self.options.will is not None:
                self.publish(self.options.will)
            self.client.disconnect()

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until the goodbye and DISCONNECT have left the socket."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
