"""After PostgreSQL restarts, every Daphne serves Socket.IO again: stations, new sockets, the Channels endpoint.

The Socket.IO handlers, the Channels endpoint's requests and the ward feeds read on asgiref's thread-sensitive
`sync_to_async` thread (outside Django's request handler, one thread shared by all of them), where nothing calls
`close_old_connections`: Django never replaces a connection that broke. After a PostgreSQL restart or failover
(`pg_ctl -m fast`: every connection terminated) that thread's connection stayed "closed" until Daphne itself was
restarted, while the publisher, the bridge and /readyz recovered (review 38, F1): the ward station already connected
never got another `ward:summary` (every tick logged "ward feed tick failed ... the connection is closed"), and a
monitor or a station opened anew (a reload, a Wi-Fi roam, the other Daphne killed) could not even connect (the
connect handler's session read failed), while `/readyz` said ok. Now every read of that thread goes through
`realtime/sio/database.py::db_thread`, which replaces a connection that errored or sat idle and no longer answers.

Here (PostgreSQL, Mosquitto, the real bridge, Daphne): PostgreSQL stopped for 3 s and started; then, the database
back, the pump says `offline` (its Last Will). Five ticks later the station connected before the restart shows it
offline, a monitor and a station opened anew are served, and so are a Channels endpoint connection opened before the
restart and one opened after, each at its first `subscribe:device` (the snapshot reader's thread replaces its broken
connection before its read too: its first read after the restart used to fail, sending "subscribe again"), and
`/readyz` says ok.
"""

import time
import urllib.error
import urllib.request

import socketio
import websocket

from devices.models import Device
from devices.states import Presence
from protocol import events
from tests.integration.scaleout.database_restart import (
    STOPS_THIS_RUNS_POSTGRESQL,
    cluster_to_stop,
    nurse_of_the_pumps_ward,
    online_and_watched,
    pump_in,
    restart,
    ward_on_the_road,
)
from tests.support.bridge import wait_until
from tests.support.sio import ChannelsClient, StreamClient

pytestmark = STOPS_THIS_RUNS_POSTGRESQL
PUMP = "R38_AFTER"


def test_after_a_database_restart_the_stations_and_new_monitors_are_served_again(
    tmp_path, artifacts_dir, daphnes_on_redis
):
    cluster = cluster_to_stop()
    cookie = nurse_of_the_pumps_ward(PUMP, "icu")
    with ward_on_the_road(tmp_path, artifacts_dir, daphnes_on_redis) as road:
        daphne = road.daphne
        pump, monitor, station, first = online_and_watched(road, PUMP, cookie, "icu")
        assert pump_in(first, PUMP)["connectivity"] == "online"
        endpoint_before = road.closed_after(ChannelsClient(daphne.url, cookie=cookie))  # used after the restart

        restart(cluster)

        start = len(monitor.events.items)
        pump.publish("status", {"status": "offline"})  # after the restart: its Last Will
        wait_until(lambda: Device.objects.filter(device_id=PUMP, presence=Presence.OFFLINE).exists(), timeout=30,
                   message="the bridge never applied the offline status after the restart")  # fmt: skip
        monitor.events.wait_for(lambda e, d: e == events.DEVICE_STATUS, timeout=15, start=start)  # publisher is back
        time.sleep(5)  # five ticks of the ward feed (WARD_FEED_TICK_S 1 s)

        failures = []
        shown = [p["connectivity"] for d in station.events.named(events.WARD_SUMMARY) if (p := pump_in(d, PUMP))]
        if shown[-1] != "offline":
            failures.append(f"the station connected before the restart still shows the pump {shown[-1]!r} "
                            f"(summaries: {shown})")  # fmt: skip
        for request, payload, wanted, who in (
            (events.SUBSCRIBE_DEVICE, {"deviceId": PUMP}, events.STREAM_SUBSCRIBED, "a monitor opened after it"),
            (events.SUBSCRIBE_WARD, {"ward": "icu"}, events.WARD_SUMMARY, "a station opened after it"),
        ):
            opened = road.closed_after(StreamClient(daphne.url, cookie=cookie))
            try:
                opened.connect()
            except socketio.exceptions.ConnectionError as refused:
                failures.append(f"{who} could not connect ({refused})")
                continue
            opened.emit(request, payload)
            got = [event for event, _ in _events_within(opened, 5)]
            if wanted not in got:
                failures.append(f"{who} got no {wanted} (its events: {got})")
        failures += endpoint_served(endpoint_before, "opened before the restart")
        try:
            endpoint = ChannelsClient(daphne.url, cookie=cookie)
        except (websocket.WebSocketException, OSError) as refused:  # a refused handshake
            failures.append(f"the Channels endpoint refused a connection ({refused!r:.120})")
        else:
            failures += endpoint_served(endpoint, "opened after the restart")
        ready = readyz(daphne.url)
        assert not failures, "; ".join(failures) + f". Meanwhile Daphne's /readyz said {ready}"
        assert ready.startswith("200 "), f"/readyz after the database came back: {ready}"


def endpoint_served(endpoint: ChannelsClient, opened: str) -> list[str]:
    """The endpoint connection's snapshot of the pump, at the first asking."""
    endpoint.emit(events.SUBSCRIBE_DEVICE, {"deviceId": PUMP})
    got = [(event, str(data)[:80]) for event, data in _events_within(endpoint, 3)]
    endpoint.close()
    if events.STREAM_SUBSCRIBED in [event for event, _ in got]:
        return []
    return [f"the Channels endpoint connection {opened} gave no snapshot (its events: {got})"]


def readyz(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
            return f"{answer.status} {answer.read().decode()[:200]}"
    except urllib.error.HTTPError as refused:
        return f"{refused.code} {refused.read().decode()[:200]}"


def _events_within(client: StreamClient, seconds: float) -> list[tuple[str, object]]:
    time.sleep(seconds)
    return list(client.events.items)
