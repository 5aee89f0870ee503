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

from django.db import connection

from devices.models import Device
from devices.states import Presence
from protocol import events
from tests.integration.scaleout.database_restart import (
    STOPS_THIS_RUNS_POSTGRESQL,
    cluster_to_stop,
    nurse_of_the_pumps_ward,
    online_and_watched,
    pump_in,
    ward_on_the_road,
)

pytestmark = STOPS_THIS_RUNS_POSTGRESQL
PUMP = "R38_FEED"
TICK_S = 8.0


def test_a_pump_gone_offline_just_before_a_database_blip_is_shown_offline_on_the_station(
    tmp_path, artifacts_dir, daphnes_on_redis
):
    cluster = cluster_to_stop()
    cookie = nurse_of_the_pumps_ward(PUMP, "icu")
    slow_feed = {"WARD_FEED_TICK_S": str(TICK_S)}
    with ward_on_the_road(tmp_path, artifacts_dir, daphnes_on_redis, daphne_env=slow_feed) as road:
        pump, monitor, station, first = online_and_watched(road, PUMP, cookie, "icu")
        subscribed_at = time.monotonic()  # the feed's first tick comes TICK_S after this
        assert pump_in(first, PUMP)["connectivity"] == "online", first
        start = len(monitor.events.items)
        pump.publish("status", {"status": "offline"})  # its Last Will
        monitor.events.wait_for(lambda e, d: e == events.DEVICE_STATUS, timeout=5, start=start)  # published: dirty
        assert time.monotonic() - subscribed_at < TICK_S - 2, "too slow to stop the database before the tick"
        cluster.halt()  # a restart or a failover: the feed's next tick cannot read
        time.sleep(max(0.0, subscribed_at + TICK_S + 3 - time.monotonic()))  # past the tick that fails
        cluster.resume()
        connection.close()  # this test's own connection died with the server
        time.sleep(2 * TICK_S + 2)  # two ticks with the database back
        summaries = [pump_in(data, PUMP) for data in station.events.named(events.WARD_SUMMARY)]
        shown = [pump["connectivity"] for pump in summaries if pump is not None]
        assert Device.objects.get(device_id=PUMP).presence == Presence.OFFLINE
        assert shown[-1] == "offline", (
            f"the station still shows {PUMP} {shown[-1]!r} {2 * TICK_S:.0f} s after the database came back, the pump "
            f"offline in the database since before the blip (connectivity in each summary it got: {shown}; "
            f"station connected: {station.client.connected}); Daphne's log: {road.daphne.log_tail(8)}"
        )
