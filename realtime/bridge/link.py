"""The bridge's broker connection: persistent session, QoS 1 subscriptions, manual acks, jittered reconnects.

Its session taken over by another client with its client id (two bridges started by mistake) is told, counted and
backed off from, and reported as monitoring degraded, and its reconnect grace is not begun again by every flap
(`session_watch.py`).
"""

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import paho.mqtt.client as mqtt
from django.conf import settings
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import topics
from protocol.mqtt_client import make_client, pubacks_send, set_tcp_nodelay
from realtime import metrics
from realtime.bridge.broker_start import broker_started_at
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.session_watch import SessionWatch

logger = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 1000  # matches the broker's max_inflight_messages (deploy and test configs)
UNSUPPORTED_PROTOCOL = (1, 132)  # "unacceptable protocol version" in MQTT 3.1.1 and 5
RECONNECT_MIN_S = 0.5
CONNACK_TIMEOUT_S = 5.0
RECONNECT_MAX_S = 30.0
READING_PAUSE_MAX_S = 0.05  # the longest a commit keeps the links from reading (an alarm's commit: ~7-45 ms)
REREAD_SUBSCRIPTION = 1  # MQTT 5 Subscription Identifier of `statuses_reread`'s short subscriptions


def reconnect_delay(attempt: int, *, low: float = RECONNECT_MIN_S, high: float = RECONNECT_MAX_S) -> float:
    """Capped exponential backoff with full jitter: uniform in [low, min(high, low * 2**attempt)]."""
    ceiling = min(high, low * (2 ** min(attempt, 16)))
    return random.uniform(low, max(low, ceiling))  # noqa: S311 - jitter, not secrecy


class ReadingPause:
    """Keeps the broker links from reading while the worker commits another pump's alarm (`Bridge.commit`).

    Under one pump's flood the link's thread reads the broker's backlog while the worker commits a calm pump's
    alarm, and both need the GIL: the worker gives it up at every SQLite call and waits for the reader to give it
    back. Traced, that alarm's commit had the reader take 25-981 of the flood's messages meanwhile and took 12-153 ms
    (median 37) for 6-32 ms of CPU; paused, it took 0-1 and 9-208 ms (median 24) on the same loaded machine
    (bench/README.md, 2026-12-05 helper h2). What is not read waits at the broker, unacknowledged, in order;
    the pause lasts at most READING_PAUSE_MAX_S whatever the commit does (a locked database retries for longer).
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self._until = 0.0

    @contextmanager
    def during(self, *, at_most_s: float = READING_PAUSE_MAX_S) -> Iterator[None]:
        """No link reads in the body (for at most `at_most_s`)."""
        self._until = time.monotonic() + at_most_s
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    def wait(self) -> None:
        """On a link's thread before each read: returns once no commit holds the reading, or its bound has passed."""
        if not self._open.is_set():
            self._open.wait(max(0.0, self._until - time.monotonic()))


class BrokerLink:
    """One paho client driven by its own thread; messages go to `on_inbound`, PUBACKs to `on_puback`."""

    def __init__(
        self, *, on_inbound: Callable[[InboundMessage], None], on_puback: Callable[[int], None],
        broker: dict | None = None, on_reconnected: Callable[[float], None] | None = None,
        reading: ReadingPause | None = None, contested_after: int = 1,
    ) -> None:  # fmt: skip
        """`contested_after`: see `SessionWatch` (a scale-out slot's link tolerates one takeover: a hand-over)."""
        self.broker = broker or settings.MQTT
        self.reading = reading or ReadingPause()  # the worker pauses the reading while it commits an alarm
        self.on_inbound = on_inbound
        self.on_puback = on_puback
        # Told, on the link's thread before any message of the new connection, how long the link was away (s):
        # the pumps' messages of that time wait at the broker and arrive at once (`budgets.py`'s time away).
        self.on_reconnected = on_reconnected
        self.lost_at: float | None = None  # when it was last lost (epoch seconds); the bridge sets it when restarted
        self.protocol = mqtt.MQTTv5
        self.connected = threading.Event()
        self.connected_since: datetime | None = None
        self.connected_clock: float | None = None  # the same moment on the monotonic clock (`slots._caught_up`)
        self.broker_started_at: datetime | None = None  # by the broker's live uptime (`broker_start.py`)
        # Whether the broker kept this link's session through its time away (CONNACK "session present"): what a pump
        # published at QoS 1 meanwhile was queued for it, so a retained copy handed over on subscribing is no news
        self.session_kept = True
        self.generation = 0
        self.connections = 0
        self.session = SessionWatch(self.broker["CLIENT_ID"], contested_after=contested_after)
        self._stop = threading.Event()
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        client = make_client(self.broker["CLIENT_ID"], protocol=self.protocol, broker=self.broker)
        client.manual_ack_set(True)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = lambda _c, _u, mid, _rc, _p: self.on_puback(mid)
        return client

    def _connect(self) -> None:
        if self.protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.broker["SESSION_EXPIRY_S"]
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            self.client.connect(self.broker["HOST"], self.broker["PORT"], keepalive=self.broker["KEEPALIVE_S"],
                                clean_start=False, properties=properties)  # fmt: skip
        else:
            self.client.connect(self.broker["HOST"], self.broker["PORT"], keepalive=self.broker["KEEPALIVE_S"])

    def run(self) -> None:
        """Connect, loop and reconnect until `stop()`; never raises for network trouble."""
        attempt = 0
        refused_silently = 0
        while not self._stop.is_set():
            try:
                self._connect()
                before = self.connections
                connack_by = time.monotonic() + CONNACK_TIMEOUT_S
                while not self._stop.is_set() and self._loop() == mqtt.MQTT_ERR_SUCCESS:
                    attempt = 0 if self.connected.is_set() else attempt
                    if not self.connected.is_set() and time.monotonic() > connack_by:
                        logger.warning("no CONNACK within %.0fs", CONNACK_TIMEOUT_S)
                        self.client.disconnect()  # a 3.1.1-only broker may ignore an MQTT 5 CONNECT
                        break
                refused_silently += self.connections == before == 0
            except (OSError, ValueError) as exc:
                logger.warning("broker unreachable: %s", exc, extra={"reason": type(exc).__name__})
            self._lost()
            if refused_silently >= 2 and self.protocol == mqtt.MQTTv5:
                self._fall_back_to_311()  # a 3.1.1-only broker may close the socket instead of answering
            if self._stop.is_set():
                break
            delay = self.session.backoff_s(reconnect_delay) or reconnect_delay(attempt)
            attempt += 1
            logger.info("reconnecting to the broker in %.1fs", delay)
            self._stop.wait(delay)
        self.client.disconnect()

    def _loop(self) -> mqtt.MQTTErrorCode:
        """One turn of paho's loop (read, write, keepalive), once the reading is not paused."""
        self.reading.wait()
        return self.client.loop(timeout=0.2)

    def stop(self) -> None:
        """Ask the loop to end; it disconnects cleanly (the session stays on the broker)."""
        self._stop.set()

    def owned(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        """The messages this link's process still applies: all of them (`slots.SlotLinks` filters)."""
        return messages

    def between_batches(self) -> None:
        """Nothing to do between two batches with one bridge (`slots.SlotLinks` hands slots back there)."""

    def fence(self, messages: list[InboundMessage]) -> None:
        """Nothing to check with one bridge, the only one applying (`slots.SlotLinks.fence` checks its leases)."""

    def fence_lost(self, lost: Exception) -> None:
        """Never called with one bridge: its `fence` never fails."""

    def applied_until(self, moment: datetime, *, clock: float | None = None) -> None:
        """Every message received before `moment` (`clock` on the monotonic clock) is committed (`slots.SlotLinks`
        tells the other bridges)."""

    def ack(self, message: InboundMessage) -> None:
        """Acknowledge a QoS 1 message after its commit, unless it came on an earlier connection."""
        if message.qos > 0 and message.generation == self.generation and self.connected.is_set():
            self.client.ack(message.mid, message.qos)

    def ack_many(self, messages: Sequence[InboundMessage]) -> None:
        """Acknowledge a committed batch's messages of this connection (QoS 1: their PUBACKs in one write)."""
        if not self.connected.is_set():
            return
        generation = self.generation
        pubacks_send(self.client, [m.mid for m in messages if m.qos == 1 and m.generation == generation])
        for message in messages:
            if message.qos > 1:  # not subscribed so (QoS 1), kept for what paho's `ack` does
                self.ack(message)

    def publish(self, topic: str, payload: str, *, expiry_s: int) -> int | None:
        """Publish at QoS 1 only while connected; returns the mid, or None when nothing was handed to paho."""
        if not self.connected.is_set():
            return None
        properties = None
        if self.protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, expiry_s)
        info = self.client.publish(topic, payload, qos=1, retain=False, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.forget(info.mid)
            return None
        return info.mid

    def forget(self, mid: int) -> None:
        """Withdraw an unacknowledged publish so paho never retransmits it (a failed command must not arrive).

        One paho counted in flight gives its slot back: paho ignores a PUBACK for a mid it no longer knows, so
        otherwise every withdrawal kept one of the connection's `max_inflight_messages` until a reconnection, and
        after that many paho queued every further command unsent while the link looked healthy."""
        client = self.client
        with client._out_message_mutex:  # paho has no public API for this
            message = client._out_messages.pop(mid, None)
            if message is not None and message.state in (mqtt.mqtt_ms_wait_for_puback, mqtt.mqtt_ms_wait_for_pubrec):
                client._inflight_messages = max(0, client._inflight_messages - 1)
                client._update_inflight()  # a publish queued behind the full window takes the slot now

    def statuses_reread(self, device_id: str) -> None:
        """Have the broker hand this pump's retained statuses (both status topics) to the bridge again: subscribed to
        them one by one, and unsubscribed in the same breath. Mosquitto queues a subscription's retained copies as it
        acknowledges it, before it reads the UNSUBSCRIBE (measured on 2.0.11: the copy arrives, retain 1). Meanwhile a
        live message on those topics comes twice, once per subscription: the re-read's copy carries its Subscription
        Identifier and is dropped (`_on_message`); on MQTT 3.1.1 it is applied twice (a status: a copy by its receipt,
        or the same state again). Called from the worker's thread, as `publish` is."""
        status_topics = [topics.device_topic(device_id, topics.STATUS), topics.legacy_status_topic(device_id)]
        properties = None
        if self.protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = REREAD_SUBSCRIPTION
        self.client.subscribe([(topic, 1) for topic in status_topics], properties=properties)  # retain handling 0
        self.client.unsubscribe(status_topics)

    @property
    def grace_from(self) -> datetime | None:
        """When the reconnect grace of the current connection counts from (`SessionWatch.grace_from`)."""
        return self.session.grace_from

    @property
    def session_contested(self) -> bool:
        return self.session.contested

    @property
    def takeovers(self) -> list[float]:
        return self.session.takeovers

    def _lost(self, reason: int | None = None) -> None:
        if self.connected.is_set():
            logger.warning("broker connection lost", extra={"reason": str(reason)})
            clock = time.monotonic()
            self.session.lost(held_s=clock - (self.connected_clock or clock), reason=reason)
        if self.lost_at is None:
            self.lost_at = time.time()
        self.connected.clear()
        self.connected_since = self.connected_clock = None

    def _on_connect(self, client: mqtt.Client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the connection: %s", reason_code)
            if reason_code.value in UNSUPPORTED_PROTOCOL and self.protocol == mqtt.MQTTv5:
                self._fall_back_to_311()
            return
        set_tcp_nodelay(client)
        self.session_kept = bool(getattr(flags, "session_present", False))
        client.subscribe([*((topic, 1) for topic in topics.BRIDGE_SUBSCRIPTIONS), (topics.BROKER_UPTIME, 0)])
        self.generation += 1
        self.connections += 1
        if self.connections > 1:
            metrics.RECONNECTS.inc()
        self.connected_since, self.connected_clock = timezone.now(), time.monotonic()
        self.session.connected(self.connected_since)
        if self.lost_at is not None and self.on_reconnected is not None:
            self.on_reconnected(max(0.0, self.connected_since.timestamp() - self.lost_at))
        self.lost_at = None
        self.connected.set()
        logger.info("connected to the broker", extra={"reason": f"MQTT {'5' if self.protocol == 5 else '3.1.1'}"})

    def _fall_back_to_311(self) -> None:
        logger.warning("the broker does not speak MQTT 5: using MQTT 3.1.1 with a persistent session")
        self.protocol = mqtt.MQTTv311
        self.client = self._client()
        self.client._clean_session = False  # a persistent 3.1.1 session; make_client has no parameter for it

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._lost(getattr(reason_code, "value", reason_code))

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        if not message.retain and _for_reread(message):  # the wildcard's subscription delivers it too
            self.client.ack(message.mid, message.qos)
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", errors="replace")
        if topic == topics.BROKER_UPTIME:
            self._broker_uptime(message)
            return
        self.on_inbound(InboundMessage(
            topic=topic, payload=message.payload, qos=message.qos, retain=bool(message.retain), mid=message.mid,
            generation=self.generation, received_at=timezone.now(), redelivered=bool(message.dup),
            session_kept=self.session_kept,
        ))  # fmt: skip

    def _broker_uptime(self, message: mqtt.MQTTMessage) -> None:
        """The broker's uptime (QoS 0, nothing to acknowledge): when it started, from a live copy only."""
        if not message.retain:
            started = broker_started_at(message.payload, received_at=timezone.now())
            if started is not None:
                self.broker_started_at = started


def _for_reread(message: mqtt.MQTTMessage) -> bool:
    """Whether the broker sent this message for a `statuses_reread` subscription (MQTT 5 only)."""
    identifiers = getattr(message.properties, "SubscriptionIdentifier", None) if message.properties else None
    return bool(identifiers) and REREAD_SUBSCRIPTION in identifiers
