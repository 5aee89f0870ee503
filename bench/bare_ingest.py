"""The floor under the bridge's cost: a bare paho subscriber that receives, decodes, stores and acknowledges.

    .venv/bin/python -m bench.bare_ingest --broker 127.0.0.1:1883 --database /tmp/bare.sqlite3

What the bridge minimally must do with routine progress, with the same libraries and nothing more (a
comparison for `bench/ingest.py`, issue 17's "the bridge <= 2x a bare paho subscriber"): MQTT 5, a persistent
session (`clean_start` false, a session expiry), the bridge's subscriptions (`protocol.topics`) at QoS 1,
its Receive Maximum of 1,000, TCP_NODELAY, manual acknowledgements. paho's network thread puts each message
on a queue; one worker thread (as the bridge's) takes what has queued (at most 500, the bridge's batch),
json-decodes each message, inserts the batch with one `executemany` in one `BEGIN IMMEDIATE` transaction on
an SQLite file in WAL mode with `synchronous=NORMAL` (the project's settings), and acknowledges each message
after the commit. No validation, duplicate guard, sessions, change log or housekeeping: that is the bridge's
own work, which the comparison measures. Prints `ready` once subscribed; stops on SIGTERM.
"""

import argparse
import json
import logging
import queue
import signal
import socket
import sqlite3
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import topics

logger = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 1000  # the bridge's (realtime/bridge/link.py)
BATCH_MAX = 500  # the bridge's BatchLimits.max_messages
SCHEMA = """CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL, boot_id TEXT, seq INTEGER,
    intended_at REAL, delivered_ml REAL, remaining_ml REAL, percent REAL, status TEXT, received_at REAL NOT NULL)"""
INSERT = ("INSERT INTO progress (device_id, kind, boot_id, seq, intended_at, delivered_ml, remaining_ml, percent, "
          "status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip


def message_row(topic: str, payload: bytes, received_at: float) -> tuple | None:
    """The row stored for one message (`devices/<id>/<kind>`), or None when its payload is not a JSON object."""
    parts = topic.split("/")
    if len(parts) != 3:
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    return (parts[1], parts[2], body.get("bootId"), body.get("seq"), body.get("intendedAt"),
            body.get("deliveredVolumeMl"), body.get("volumeRemainingMl"), body.get("progressPercent"),
            body.get("status"), received_at)  # fmt: skip


def database_open(path: str) -> sqlite3.Connection:
    """The SQLite file as the project opens it: WAL, synchronous=NORMAL, explicit transactions."""
    connection = sqlite3.connect(path, timeout=20, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(SCHEMA)
    return connection


class BareIngest:
    """paho's thread queues messages; `run()` stores them in batches and acknowledges after each commit."""

    def __init__(self, host: str, port: int, database: str, client_id: str) -> None:
        self.database = database_open(database)
        self.inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True)  # fmt: skip
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.inbox.put(message)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect(host, port, clean_start=False, properties=properties)

    def _connected(self, client: mqtt.Client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            logger.error("the broker refused the connection: %s", reason_code)
            return
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(topic, 1) for topic in topics.BRIDGE_SUBSCRIPTIONS])

    def run(self) -> None:
        """Batches until `stopping`: take what queued, decode, insert in one transaction, commit, acknowledge."""
        while not self.stopping.is_set():
            try:
                batch = [self.inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            now = time.time()
            rows = [row for message in batch if (row := message_row(message.topic, message.payload, now))]
            self.database.execute("BEGIN IMMEDIATE")
            self.database.executemany(INSERT, rows)
            self.database.execute("COMMIT")
            for message in batch:
                self.client.ack(message.mid, message.qos)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--database", required=True, help="the SQLite file (created if absent)")
    parser.add_argument("--client-id", default="bench-bare-ingest")
    args = parser.parse_args()
    host, port = args.broker.rsplit(":", 1)
    ingest = BareIngest(host, int(port), args.database, args.client_id)
    signal.signal(signal.SIGTERM, lambda *_: ingest.stopping.set())
    ingest.client.loop_start()
    if not ingest.subscribed.wait(30):
        raise SystemExit("the bare subscriber never subscribed")
    print("ready", flush=True)
    try:
        ingest.run()
    finally:
        ingest.close()


if __name__ == "__main__":
    main()
