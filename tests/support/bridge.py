"""`manage.py run_mqtt_bridge` as a real subprocess for integration tests: start, wait until connected, stop, kill."""

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.models import BridgeStatus
from tests.support.processes import ROOT, VENV_BIN, stop, subprocess_env


def bridge_env(request) -> dict[str, str]:
    """A test module's `BRIDGE_ENV`: settings of its own for its module bridge (over processes.subprocess_env's),
    such as a timer its tests must not race or one they test."""
    return dict(getattr(request.module, "BRIDGE_ENV", {}))


def sqlite_writable(path: str) -> bool:
    """Whether a write transaction can begin on this SQLite file now."""
    probe = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def postgresql_writers() -> int:
    """How many other sessions on the test database are inside a write transaction now (they hold an xid)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL")  # fmt: skip
        return cursor.fetchone()[0]


class BridgeProcess:
    """One bridge process with its own MQTT client id (a persistent session that survives `kill()`)."""

    def __init__(self, broker_url: str, realtime_url: str, log_dir: Path, *, name: str = "", args: tuple = (),
                 **env: str) -> None:  # fmt: skip
        """`realtime_url` is where it forwards: a Daphne's `internal_url` (or a dead port when none is needed).

        `name` (the heartbeat row) and `args` (more `run_mqtt_bridge` options) for bridges that share a client id.
        """
        self.env = {"MQTT_URL": broker_url, "REALTIME_INTERNAL_URL": realtime_url,
                    "MQTT_CLIENT_ID": f"bridge-test-{uuid.uuid4().hex[:8]}", **env}  # fmt: skip
        self.client_id = self.env["MQTT_CLIENT_ID"]
        self.name = name or f"bridge-{self.client_id[-8:]}"
        self.args = tuple(args)
        self.log_path = Path(log_dir) / f"{self.client_id}-{self.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 20.0, wait: bool = True) -> "BridgeProcess":
        """Start the bridge and (unless `wait` is false) wait until its heartbeat says it holds the broker."""
        started = timezone.now()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "python"), "manage.py", "run_mqtt_bridge", "--name", self.name, *self.args],
            cwd=ROOT, env=subprocess_env(**self.env), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if wait:
            try:
                self.wait_connected(since=started, timeout=timeout)
            except BaseException:
                self.kill()  # never leave a bridge behind that nobody stops: it would go on consuming and writing
                raise
        return self

    def wait_connected(self, *, since=None, timeout: float = 20.0) -> None:
        """Block until the heartbeat (written after `since`) says broker_connected; fail with the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"bridge exited with {self.process.returncode}:\n{self.log_tail()}")
            close_old_connections()
            status = BridgeStatus.objects.filter(name=self.name).first()
            if status and status.broker_connected and (since is None or status.broker_connected_since >= since):
                return
            time.sleep(0.05)
        raise TimeoutError(f"bridge not connected within {timeout}s:\n{self.log_tail()}")

    def running(self) -> bool:
        """Whether the bridge's process is alive (paused counts)."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM: the bridge finishes its batch, disconnects cleanly and exits (resumed first if paused)."""
        if self.process is not None:
            self.resume()
            stop(self.process, sig=signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: every thread stalls where it is (a long pause, a stuck disk), its sockets left open."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def pause_idle(self) -> None:
        """SIGSTOP the bridge at a moment it holds no write lock: paused holding SQLite's, it would block every
        write of the test and of Daphne until resumed (a CI run's teardown flush failed "database is locked" so);
        paused inside a PostgreSQL write transaction, its row locks (a pump's, by `device_lock`) would."""
        database = settings.DATABASES["default"]
        for _ in range(50):
            self.pause()
            sqlite = database["ENGINE"] == "django.db.backends.sqlite3"
            if sqlite_writable(database["NAME"]) if sqlite else not postgresql_writers():
                return
            self.resume()
            time.sleep(0.05)
        raise AssertionError("the bridge held the database's write lock at every try")

    def resume(self) -> None:
        """SIGCONT: a paused bridge goes on from where it stalled."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def held_up(self) -> Iterator[None]:
        """Paused (`pause_idle`) while the test writes its heartbeat in its stead every 0.5 s: a bridge held up (its
        outbox not publishing yet, its ingest waiting), not a dead one. A paused bridge's heartbeat goes stale after
        BRIDGE_STALE_AFTER_S (3 s in the tests) and the pages then rightly say monitoring is degraded: a test about
        something else that a loaded run made last longer failed so (the waiting window said "monitoring degraded",
        not "not acknowledged yet": test_waiting_window_late_puback.py)."""
        from devices.services.records import bridge_heartbeat

        self.pause_idle()
        try:  # finish: the connection of the thread that wrote (`connection` is per thread)
            with repeating(lambda: bridge_heartbeat(broker_connected=True, name=self.name), every_s=0.5,
                           name=f"{self.name}-heartbeat", finish=lambda: connection.close()):  # fmt: skip
                yield
        finally:
            self.resume()

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (what a crash looks like)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def repeating(action, *, every_s: float, name: str, finish=None) -> Iterator[None]:
    """`action()` now, then every `every_s` on a thread of its own until the block ends (`finish()` on that thread as
    it ends: its database connection closed)."""
    stop = threading.Event()

    def repeat() -> None:
        try:
            while not stop.wait(every_s):
                action()
        finally:
            if finish is not None:
                finish()

    action()
    repeater = threading.Thread(target=repeat, name=name, daemon=True)
    repeater.start()
    try:
        yield
    finally:
        stop.set()
        repeater.join(timeout=10)


def broker_session_end(broker_url: str, client_id: str) -> None:
    """End the broker's session of `client_id` (its subscriptions and the messages queued for it), as its expiry
    does: a connection under that id with a clean start and no expiry, closed at once. Only on a broker that binds no
    client id to a user (the tests' development config)."""
    host, port = broker_url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(host, int(port), clean_start=True)  # session expiry 0: the session ends with this connection
    client.loop_start()
    try:
        if not connected.wait(timeout=10):
            raise TimeoutError(f"{client_id}: the broker never accepted the connection that ends its session")
    finally:
        client.disconnect()
        client.loop_stop()


class PumpClient:
    """A pump as the bridge sees it: a paho MQTT 5 client that publishes and collects the commands it receives."""

    def __init__(self, broker_url: str, device_id: str, *, persistent: bool = False) -> None:
        self.device_id = device_id
        self.commands: list[dict] = []
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pump-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.on_message = lambda _c, _u, message: self.commands.append(json.loads(message.payload))
        properties = None
        if persistent:  # the broker keeps its subscription and queued commands while it restarts
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 300
            self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(host, int(port), clean_start=not persistent, properties=properties)
        self.client.loop_start()
        self.client.subscribe(f"devices/{device_id}/commands", qos=1)
        # A command published before the broker granted this subscription is never delivered (clean session): a
        # test that asks for a command at once would wait for a reply the pump never had the chance to send.
        if not subscribed.wait(timeout=10):
            self.close()
            raise TimeoutError(f"{device_id}: the broker never granted the commands subscription")

    def publish(self, kind: str, payload: dict | bytes | str, *, qos: int = 1, retain: bool = False,
                topic: str | None = None) -> None:  # fmt: skip
        """Publish on `devices/{id}/{kind}` (or `topic`) and wait for the broker to take it."""
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        info = self.client.publish(topic or f"devices/{self.device_id}/{kind}", body, qos=qos, retain=retain)
        info.wait_for_publish(timeout=10)

    @contextlib.contextmanager
    def reporting(self, kind: str, payload: dict, every_s: float = 0.8) -> Iterator[None]:
        """Publish `payload` on `kind` now and every `every_s` until the block ends: a running pump is heard every
        second, and one heard once then silent past the heartbeat (3 s in the tests) is rightly shown stale, however
        long a loaded run takes to look at it."""
        with repeating(lambda: self.publish(kind, payload), every_s=every_s, name=f"{self.device_id}-reporting"):
            yield

    def close(self) -> None:
        """Disconnect first: it wakes paho's network thread, which then ends at once; `loop_stop` first waits out
        that thread's 1 s select (a second a pump, over the suite's hundreds of pumps)."""
        self.client.disconnect()
        self.client.loop_stop()


class PumpWithWill:
    """A pump on one MQTT connection with a Last Will `offline` that is NOT retained (the contract names no retain
    flag for the Will; a firmware's `will_set(topic, payload)` defaults to not retained), whose power can be cut."""

    def __init__(self, broker_url: str, device_id: str) -> None:
        self.device_id, self.commands, self.powered = device_id, [], True
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pump-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.will_set(f"devices/{device_id}/status", json.dumps({"status": "offline"}), qos=1, retain=False)
        self.client.on_message = lambda _c, _u, message: self.commands.append(json.loads(message.payload))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(host, int(port), keepalive=5)
        self.client.loop_start()
        self.client.subscribe(f"devices/{device_id}/commands", qos=1)
        assert subscribed.wait(timeout=10), "the broker never granted the commands subscription"

    def publish(self, kind: str, payload: dict | bytes, *, qos: int = 1, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload)
        self.client.publish(f"devices/{self.device_id}/{kind}", body, qos=qos, retain=retain).wait_for_publish(10)

    def power_off(self) -> None:
        """The connection dies without a DISCONNECT: the broker publishes the Will."""
        self.powered = False
        self.client.loop_stop()
        self.client.socket().shutdown(socket.SHUT_RDWR)
        self.client.socket().close()


def wait_until(predicate, *, timeout: float = 10.0, message: str = "condition not met", interval: float = 0.05,
               database: bool = True):  # fmt: skip
    """Poll `predicate` (with fresh database connections, unless `database` is false: a test without the
    database) until it returns a truthy value; fail with `message`."""
    deadline = time.monotonic() + timeout
    while True:
        if database:
            close_old_connections()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout}s)")
        time.sleep(interval)
