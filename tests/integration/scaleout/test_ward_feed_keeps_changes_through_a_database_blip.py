"""A pump gone offline just before a database blip is shown offline on the ward station once the database is back.

The ward feed (`realtime/sio/ward_feed.py::WardFeed.tick`) takes the set of pumps changed since the last tick and
empties it before it reads their summaries. When that read failed (PostgreSQL restarting, a failover, connections
refused for a moment) `_run` logged "ward feed tick failed" and the pumps were forgotten: nothing marks them changed
again, so the station kept showing an offline pump "Online" for good (an idle pump with presence never ages to
stale on the page, `format.js::connectivityNow`; review 38, F4). Now a failed read puts them back for the next tick.

Here (PostgreSQL, Mosquitto, the real bridge and Daphne) an idle pump with presence says `offline` (its Last Will),
the change is published (its own subscriber gets it), then PostgreSQL is stopped as a restart stops it (`pg_ctl -m
fast`) over one tick of the feed and started again. Checked to fail both without the fix of the feed's thread
(`realtime/sio/database.py`: no tick read again after the restart) and without this one alone.

`WARD_FEED_TICK_S` is set to 8 s only so that the tick (its first one is `WARD_FEED_TICK_S` after the station
subscribes) falls inside the outage without racing it; at the default 1 s any outage longer than a second lost
whatever changed just before it.
"""

import time

import pytest
from django.db import connection

from devices.models import Device
from devices.states import Presence
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.postgres import this_runs_cluster
from tests.support.sio import StreamClient, session_cookie

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="stops the PostgreSQL cluster of this run"),
]
PUMP = "R38_FEED"
TICK_S = 8.0


def pump_in(summary: dict) -> dict | None:
    return next((pump for pump in summary.get("pumps", []) if pump["deviceId"] == PUMP), None)


def test_a_pump_gone_offline_just_before_a_database_blip_is_shown_offline_on_the_station(
    tmp_path, artifacts_dir, daphnes_on_redis
):
    cluster = this_runs_cluster()
    if cluster is None:
        pytest.skip("needs a PostgreSQL cluster of this pytest process to stop (run with -n 0)")
    ward = make_ward("icu")
    make_device(PUMP, ward=ward, has_presence=True)
    cookie = session_cookie(make_user("nurse", ward=ward))
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=False).start()
    bridge = pump = None
    clients: list[StreamClient] = []
    try:
        (daphne,) = daphnes_on_redis(1, MQTT_URL=broker.url, WARD_FEED_TICK_S=str(TICK_S))
        bridge = BridgeProcess(broker.url, daphne.internal_url, artifacts_dir).start()
        pump = PumpClient(broker.url, PUMP)
        pump.publish("status", {"status": "online", "batteryLevel": 90})
        wait_until(lambda: Device.objects.filter(device_id=PUMP, presence=Presence.ONLINE).exists(), timeout=15,
                   message="the pump's online status never applied")  # fmt: skip
        monitor = StreamClient(daphne.url, cookie=cookie).connect()
        clients.append(monitor)
        assert monitor.subscribe(PUMP)[0] == events.STREAM_SUBSCRIBED
        station = StreamClient(daphne.url, cookie=cookie).connect()
        clients.append(station)
        station.emit(events.SUBSCRIBE_WARD, {"ward": "icu"})
        first = station.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=10)
        subscribed_at = time.monotonic()  # the feed's first tick comes TICK_S after this
        assert pump_in(first)["connectivity"] == "online", first
        start = len(monitor.events.items)
        pump.publish("status", {"status": "offline"})  # its Last Will
        monitor.events.wait_for(lambda e, d: e == events.DEVICE_STATUS, timeout=5, start=start)  # published: dirty
        assert time.monotonic() - subscribed_at < TICK_S - 2, "too slow to stop the database before the tick"
        cluster.halt()  # a restart or a failover: the feed's next tick cannot read
        time.sleep(max(0.0, subscribed_at + TICK_S + 3 - time.monotonic()))  # past the tick that fails
        cluster.resume()
        connection.close()  # this test's own connection died with the server
        time.sleep(2 * TICK_S + 2)  # two ticks with the database back
        summaries = [pump_in(data) for data in station.events.named(events.WARD_SUMMARY)]
        shown = [pump["connectivity"] for pump in summaries if pump is not None]
        assert Device.objects.get(device_id=PUMP).presence == Presence.OFFLINE
        assert shown[-1] == "offline", (
            f"the station still shows {PUMP} {shown[-1]!r} {2 * TICK_S:.0f} s after the database came back, the pump "
            f"offline in the database since before the blip (connectivity in each summary it got: {shown}; "
            f"station connected: {station.client.connected}); Daphne's log: {daphne.log_tail(8)}"
        )
    finally:
        for client in clients:
            client.close()
        if pump is not None:
            pump.close()
        if bridge is not None:
            bridge.stop()
        broker.stop()
