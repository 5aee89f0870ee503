"""A station's or a monitor's subscription asked while PostgreSQL is down is refused by name, "… subscribe again",
and asked again once the database is back it is answered: the page recovers by itself.

A screen connected before the database went away asks for its stream meanwhile (a gap's resubscription, a refused
stream asked again, the rights re-check's restart of a feed). Its read failed into the server's catch-all, whose
"Internal error" named no ward and no pump: `live.js` could not ask again, and the station read "Not live: waiting for
the server's answer…" with its technical alarm, the monitor its notice, until someone reloaded, the database back or
not (review 40, F2 and its held note). Here (PostgreSQL, Daphne, Socket.IO clients): the cluster of this run stopped,
a `subscribe:ward` and a `subscribe:device` each get an `error` naming their stream that `live.js` asks again on; the
cluster started again, the same requests (as the page sends them 3 to 15 s later) get the full summary and the
snapshot.
"""

from django.db import connection

from protocol import events
from realtime.sio.subscriptions import SNAPSHOT_FAILED, WARD_READ_FAILED
from tests.factories import make_device, make_user, make_ward
from tests.integration.scaleout.database_restart import STOPS_THIS_RUNS_POSTGRESQL, cluster_to_stop
from tests.support.sio import StreamClient, page_asks_again, session_cookie

pytestmark = STOPS_THIS_RUNS_POSTGRESQL
PUMP = "R40_ASKED_IN_OUTAGE"


def _error_naming(client: StreamClient, key: str, value: str, start: int) -> dict:
    return client.events.wait_for(lambda e, d: e == events.ERROR and d.get(key) == value, timeout=15, start=start)


def test_subscriptions_asked_while_the_database_is_down_are_refused_by_name_and_answered_once_it_is_back(
    daphnes_on_redis,
):
    cluster = cluster_to_stop()
    ward = make_ward("r40out")
    make_device(PUMP, ward=ward, has_presence=True)
    cookie = session_cookie(make_user("r40-outage-nurse", ward=ward))
    (daphne,) = daphnes_on_redis(1, with_redis=False)
    station = StreamClient(daphne.url, cookie=cookie).connect()
    monitor = StreamClient(daphne.url, cookie=cookie).connect()
    try:
        cluster.halt()
        try:
            start_station, start_monitor = len(station.events.items), len(monitor.events.items)
            station.emit(events.SUBSCRIBE_WARD, {"ward": "r40out"})
            monitor.emit(events.SUBSCRIBE_DEVICE, {"deviceId": PUMP})
            station_error = _error_naming(station, "ward", "r40out", start_station)
            monitor_error = _error_naming(monitor, "deviceId", PUMP, start_monitor)
        finally:
            cluster.resume()
            connection.close()  # this test's own connection died with the server
        assert station_error["message"] == WARD_READ_FAILED and page_asks_again(station_error["message"])
        assert monitor_error["message"] == SNAPSHOT_FAILED and page_asks_again(monitor_error["message"])

        start_station, start_monitor = len(station.events.items), len(monitor.events.items)
        station.emit(events.SUBSCRIBE_WARD, {"ward": "r40out"})  # asked again, as live.js does 3 to 15 s later
        summary = station.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=15, start=start_station)
        assert summary["full"] and [pump["deviceId"] for pump in summary["pumps"]] == [PUMP]
        assert monitor.subscribe(PUMP, timeout=15)[0] == events.STREAM_SUBSCRIBED
    finally:
        station.close()
        monitor.close()
