"""A pump deleted while screens watch it, and one registered again under the same device id.

Real parts: Daphne (its publisher, fan-out, ward feed, rights re-check) and real python-socketio clients; the
administrator's deletion and registration go through the services the admin pages call, committed to the database
Daphne reads.

Before the fix, deleting a pump told no one: its change-log rows went with it by cascade, so a watcher kept the
pump's last state until the rights re-check (2 s) said "No longer permitted to watch this pump", and a ward feed
never named it in `left` (a station showed it for good). Registered again under the same id, the pump counted
`seq` from 1 again, so a client holding `seq` N of the old pump took the new pump's events for ones already seen
(the contract says to drop any `seq` at or below the last): its screen kept the old pump's state.
"""

import time

import pytest
from django.conf import settings

from devices.models import Device
from devices.services.registration import pump_delete, pump_register, pump_registration_save
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def connected(url: str, clients: list, cookie: str) -> StreamClient:
    client = StreamClient(url, cookie=cookie).connect()
    clients.append(client)
    return client


def beds_edited(device_id: str, beds: list[str]) -> None:
    """Changes of the pump, each a `device:status` (what the admin's change page records)."""
    for bed in beds:
        device = Device.objects.get(device_id=device_id)
        device.bed = bed
        pump_registration_save(device=device, fields=["bed"])


def told_removed(client: StreamClient, device_id: str, *, start: int = 0, timeout: float = 3.0) -> tuple[str, dict]:
    """How the client learnt the pump is gone: its `device:removed` (the publisher came first) or, when the rights
    re-check came first (the deletion committed by another process: Daphne's publisher polls for it), an `error`
    "Pump removed…" naming it. Never "No longer permitted", never nothing."""
    found: list[tuple[str, dict]] = []

    def told(event: str, data: dict) -> bool:
        hit = data.get("deviceId") == device_id and event in (events.DEVICE_REMOVED, events.ERROR)
        if hit:
            found.append((event, data))
        return hit

    try:
        client.events.wait_for(told, timeout=timeout, start=start)
    except AssertionError:
        raise AssertionError(f"a watcher of the deleted pump {device_id} was told nothing within {timeout} s: it "
                             f"got {client.events.items[start:]}") from None  # fmt: skip
    event, data = found[0]
    assert event == events.DEVICE_REMOVED or data["message"].startswith("Pump removed"), (
        f"the pump's deletion was told as {event} {data}: not as a removal"
    )
    return event, data


def seqs_of(client: StreamClient, device_id: str) -> list[int]:
    return [data["seq"] for _, data in client.events.device_events(device_id)]


def test_a_watcher_of_a_pump_deleted_and_registered_again_never_takes_the_new_pump_for_the_old(daphne_server, clients):
    """Deleted and registered again at once (within one rights re-check): the watcher's subscription ends with
    `device:removed`; subscribing again, it gets the new pump with a `seq` above all it saw, so nothing of the new
    pump is ever dropped as already seen, and its snapshot is the new pump's."""
    ward = make_ward("rn1")
    make_device("RN_PUMP", ward=ward, bed="4")
    cookie = session_cookie(make_user("rn1-nurse", ward=ward))
    beds_edited("RN_PUMP", ["5", "6", "7", "8"])  # the old pump's seq: 4
    watcher = connected(daphne_server.url, clients, cookie)
    assert watcher.subscribe("RN_PUMP")[0] == events.STREAM_SUBSCRIBED

    pump_delete(device=Device.objects.get(device_id="RN_PUMP"))
    pump_register(device=Device(device_id="RN_PUMP", ward=ward, bed="12"))
    beds_edited("RN_PUMP", ["14"])
    new_seq = Device.objects.get(device_id="RN_PUMP").event_seq

    told_removed(watcher, "RN_PUMP")
    seen = seqs_of(watcher, "RN_PUMP")
    assert all(later > earlier for earlier, later in zip(seen, seen[1:], strict=False)), (
        f"the watcher's seq went back {seen}: the pump registered again counted seq afresh, so a client holding "
        "the old pump's seq drops the new pump's changes as already seen and keeps showing the old pump"
    )
    again = connected(daphne_server.url, clients, cookie)
    reply, subscribed = again.subscribe("RN_PUMP")
    assert reply == events.STREAM_SUBSCRIBED, subscribed
    status = again.events.wait_for(lambda e, d: e == events.DEVICE_STATUS and d["deviceId"] == "RN_PUMP", timeout=5)
    assert subscribed["seq"] == new_seq > max(seen) and status["status"]["bed"] == "14", (
        f"subscribing again after the pump was registered again: snapshot seq {subscribed['seq']} (the new pump's "
        f"{new_seq}, the watcher saw {seen}), bed {status['status']['bed']}"
    )


def test_a_client_back_after_a_pump_was_deleted_and_registered_again_sees_a_newer_seq(daphne_server, clients):
    """A client away meanwhile (its last `seq` of the old pump kept, as a ward overview keeps each card's) gets a
    `seq` above it for the new pump, in its snapshot and in the ward feed's summary, never one it would ignore."""
    ward = make_ward("rn2")
    make_device("RN_BACK", ward=ward, bed="4")
    cookie = session_cookie(make_user("rn2-nurse", ward=ward))
    beds_edited("RN_BACK", ["5", "6", "7"])
    old_seq = Device.objects.get(device_id="RN_BACK").event_seq

    pump_delete(device=Device.objects.get(device_id="RN_BACK"))
    pump_register(device=Device(device_id="RN_BACK", ward=ward, bed="12"))

    client = connected(daphne_server.url, clients, cookie)
    reply, subscribed = client.subscribe("RN_BACK")
    assert reply == events.STREAM_SUBSCRIBED, subscribed
    client.emit(events.SUBSCRIBE_WARD, {"ward": "rn2"})
    summary = client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=5)
    listed = {pump["deviceId"]: pump for pump in summary["pumps"]}
    assert subscribed["seq"] > old_seq and listed["RN_BACK"]["seq"] > old_seq, (
        f"the pump registered again restarted its seq (snapshot {subscribed['seq']}, ward summary "
        f"{listed['RN_BACK']['seq']}, the old pump's last {old_seq}): a client that kept {old_seq} ignores it"
    )


def test_a_deleted_pump_is_announced_to_its_watchers_and_leaves_its_ward_feeds(daphne_server, clients):
    ward = make_ward("rn3")
    make_device("RN_GONE", ward=ward, bed="4")
    make_device("RN_STAYS", ward=ward, bed="5")
    cookie = session_cookie(make_user("rn3-nurse", ward=ward))
    beds_edited("RN_GONE", ["6"])
    watcher = connected(daphne_server.url, clients, cookie)
    assert watcher.subscribe("RN_GONE")[0] == events.STREAM_SUBSCRIBED
    watcher.emit(events.SUBSCRIBE_WARD, {"ward": "rn3"})
    watcher.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=5)
    start = len(watcher.events.items)

    pump_delete(device=Device.objects.get(device_id="RN_GONE"))

    event, told = told_removed(watcher, "RN_GONE", start=start)
    assert event == events.ERROR or told["seq"] == 2, told  # the removal took the pump's next seq
    left = watcher.events.wait_for(
        lambda e, d: e == events.WARD_SUMMARY and "RN_GONE" in d.get("left", []), timeout=5, start=start
    )
    assert "RN_GONE" not in {pump["deviceId"] for pump in left["pumps"]}, left
    time.sleep(settings.PUMPSTREAM["RIGHTS_RECHECK_S"] + 1.0)  # a rights re-check came and went
    errors = [error for error in watcher.events.named(events.ERROR) if not error["message"].startswith("Pump removed")]
    assert not errors, f"the removal was also told as a refusal: {errors}"
    notices = [(e, d) for e, d in watcher.events.items[start:] if d.get("deviceId") == "RN_GONE"]
    assert len(notices) == 1, f"the removal was told more than once, or more followed it: {notices}"
