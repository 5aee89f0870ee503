"""A pump that leaves a ward (moved in the admin, or its ward deleted) leaves that ward's feeds: the stations
following the ward are told (`left`), or they would show the pump, and sound its alarms, as theirs for good.

Real parts: Daphne's ward feed, real python-socketio clients; the administrator's edit goes through the same
service the admin page calls, committed to the database Daphne reads.
"""

import pytest

from devices.models import Device
from devices.services.registration import pump_registration_save, ward_delete
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def ward_client(url: str, user, ward: str, clients: list) -> StreamClient:
    """A connected client following `ward`'s feed (its first `ward:summary` received)."""
    client = StreamClient(url, cookie=session_cookie(user)).connect()
    clients.append(client)
    client.emit(events.SUBSCRIBE_WARD, {"ward": ward})
    client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY)
    return client


def told_left(client: StreamClient, device_id: str, feed: str) -> dict:
    """The summary that tells the station the pump is no longer its feed's: named in `left`, or left out of a
    `full` summary (the feed re-scoped by the rights re-check, its ward gone)."""

    def gone(event: str, data: dict) -> bool:
        if event != events.WARD_SUMMARY:
            return False
        listed = {pump["deviceId"] for pump in data["pumps"]}
        return device_id in data.get("left", []) or (data.get("full") is True and device_id not in listed)

    try:
        return client.events.wait_for(gone, timeout=5.0)
    except AssertionError:
        summaries = client.events.named(events.WARD_SUMMARY)
        raise AssertionError(
            f"the {feed!r} feed was never told that {device_id} left its ward: its station still shows the pump "
            f"(summaries received: {summaries})"
        ) from None


def test_a_pump_moved_to_another_ward_leaves_the_feeds_that_showed_it(daphne_server, clients):
    w1, w2 = make_ward("wl1"), make_ward("wl2")
    make_device("WL_PUMP_1", ward=w1, bed="4")
    make_device("WL_PUMP_2", ward=w1, bed="5")
    nurse = make_user("wl1-nurse", ward=w1)
    station, everywhere = (
        ward_client(daphne_server.url, nurse, "wl1", clients),
        ward_client(daphne_server.url, nurse, "*", clients),
    )
    moved = Device.objects.get(device_id="WL_PUMP_2")
    moved.ward = w2
    pump_registration_save(device=moved, fields=["ward"])  # what the admin's change page does
    left = told_left(station, "WL_PUMP_2", "wl1")
    assert "WL_PUMP_2" not in {p["deviceId"] for p in left["pumps"]}, left
    told_left(everywhere, "WL_PUMP_2", "*")

    ward_delete(ward=w1)  # WL_PUMP_1 leaves too, with its ward
    told_left(everywhere, "WL_PUMP_1", "*")

    first = station.events.named(events.WARD_SUMMARY)[0]  # a station (re)subscribing drops what it no longer lists
    assert first.get("full") is True and {p["deviceId"] for p in first["pumps"]} == {"WL_PUMP_1", "WL_PUMP_2"}, (
        f"a feed's first summary does not say it lists every pump of the feed: {first}"
    )
