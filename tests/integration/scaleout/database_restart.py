"""What the PostgreSQL restart tests of this folder share: the cluster of this run to stop, and a ward's pumps on the
real road (Mosquitto, the bridge, a Daphne on Redis) whose every part is stopped after the test, however it ends.

A restart (`pg_ctl -m fast`) terminates every connection of every process at once; these tests check that each
reader on the realtime side (the Socket.IO handlers, the ward feed, the escalation fan-out) serves again once the
database is back. Only what differs between them stays in each test: its Daphne's and its bridge's settings, its
scenario, and what its assertions say.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import pytest
from django.db import connection

from devices.models import Device
from devices.states import Presence
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.daphne import DaphneServer
from tests.support.postgres import PostgresCluster, this_runs_cluster
from tests.support.sio import StreamClient, session_cookie


class Closable(Protocol):
    def close(self) -> None: ...


Screen = TypeVar("Screen", bound=Closable)


STOPS_THIS_RUNS_POSTGRESQL = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="stops the PostgreSQL cluster of this run"),
]


def cluster_to_stop() -> PostgresCluster:
    """The cluster this pytest process started, or a skip: stopping one that an xdist controller shares with other
    workers (or SQLite) would break tests this one knows nothing of."""
    cluster = this_runs_cluster()
    if cluster is None:
        pytest.skip("needs a PostgreSQL cluster of this pytest process to stop (run with -n 0)")
    return cluster


def restart(cluster: PostgresCluster) -> None:
    """A restart, a failover: every connection terminated, the server away for 3 s, then back."""
    cluster.halt()
    time.sleep(3)
    cluster.resume()
    connection.close()  # this test's own connection died with the server


def nurse_of_the_pumps_ward(device_id: str, ward: str) -> str:
    """The session cookie of a nurse of `ward`, where the pump is, with presence (its Last Will marks it offline)."""
    ward_row = make_ward(ward)
    make_device(device_id, ward=ward_row, has_presence=True)
    return session_cookie(make_user("nurse", ward=ward_row))


def pump_in(summary: dict, device_id: str) -> dict | None:
    """The pump's row in a `ward:summary` (None: the summary does not carry it)."""
    return next((pump for pump in summary.get("pumps", []) if pump["deviceId"] == device_id), None)


@dataclass
class WardOnTheRoad:
    """A Mosquitto, a Daphne on Redis and the bridge between them; the screens and the pumps opened on it are closed
    after the test (the Daphne by `daphnes_on_redis`)."""

    broker: MosquittoBroker
    daphne: DaphneServer
    bridge: BridgeProcess
    screens: list[Closable] = field(default_factory=list)
    pumps: list[PumpClient] = field(default_factory=list)

    def pump(self, device_id: str) -> PumpClient:
        self.pumps.append(PumpClient(self.broker.url, device_id))
        return self.pumps[-1]

    def screen(self, cookie: str) -> StreamClient:
        """A Socket.IO client of the Daphne, connected."""
        return self.closed_after(StreamClient(self.daphne.url, cookie=cookie)).connect()

    def closed_after(self, screen: Screen) -> Screen:
        """`screen` (a Socket.IO or a Channels client, connected or not) is closed after the test."""
        self.screens.append(screen)
        return screen


@contextmanager
def ward_on_the_road(
    tmp_path: Path,
    artifacts_dir: Path,
    daphnes_on_redis: Callable[..., list[DaphneServer]],
    *,
    daphne_env: dict[str, str] | None = None,
    bridge_env: dict[str, str] | None = None,
) -> Iterator[WardOnTheRoad]:
    """Mosquitto, one Daphne (with `daphne_env`) and the bridge (with `bridge_env`) started; on the way out the screens
    and pumps are closed before the bridge and the broker are stopped."""
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=False).start()
    bridge = road = None
    try:
        (daphne,) = daphnes_on_redis(1, MQTT_URL=broker.url, **(daphne_env or {}))
        bridge = BridgeProcess(broker.url, daphne.internal_url, artifacts_dir, **(bridge_env or {})).start()
        road = WardOnTheRoad(broker, daphne, bridge)
        yield road
    finally:
        if road is not None:
            for opened in [*road.screens, *road.pumps]:
                opened.close()
        if bridge is not None:
            bridge.stop()
        broker.stop()


class Watched(NamedTuple):
    pump: PumpClient
    monitor: StreamClient
    station: StreamClient
    first_summary: dict


def online_and_watched(road: WardOnTheRoad, device_id: str, cookie: str, ward: str) -> Watched:
    """The pump says `online`, then its monitor subscribes to it and its ward's station to the ward (the station's
    first `ward:summary` received)."""
    pump = road.pump(device_id)
    pump.publish("status", {"status": "online", "batteryLevel": 90})
    wait_until(lambda: Device.objects.filter(device_id=device_id, presence=Presence.ONLINE).exists(), timeout=15,
               message="the pump's online status never applied")  # fmt: skip
    monitor = road.screen(cookie)
    assert monitor.subscribe(device_id)[0] == events.STREAM_SUBSCRIBED
    station = road.screen(cookie)
    station.emit(events.SUBSCRIBE_WARD, {"ward": ward})
    first = station.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=10)
    return Watched(pump, monitor, station, first)
