"""Snapshot plus events equals a fresh snapshot equals the database: the consistency tests' assertions.

Clients subscribe at random moments (`subscribe_somehow`: Socket.IO or the Channels endpoint); once nothing
left would change a pump by time alone (`stable_seqs`), `assert_consistent` checks per pump that each
client's snapshot + live events equals a fresh subscriber's snapshot, which equals the database read
directly, and that the live events after each snapshot came in `seq` order, without a gap or a duplicate.
"""

import time
from collections.abc import Sequence

from django.db import close_old_connections

from devices.models import Alarm, ChangeLogEntry, Command, Device, InfusionSession
from devices.states import ACTIVE_SESSION_STATUSES, COMMAND_UNSETTLED_STATES, AlarmState
from protocol import events
from realtime.sio.snapshot import read_snapshot
from tests.support.bridge import wait_until
from tests.support.processes import subprocess_env
from tests.support.sio import ChannelsClient, StreamClient, state_from_events

HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])  # the bridge's, as the tests start it


def subscribe_somehow(url: str, cookie: str, n: int, device_ids: Sequence[str]) -> StreamClient | ChannelsClient:
    """Client number `n` subscribed to `device_ids`: every third one on the Channels endpoint, else Socket.IO (every
    third of those on Engine.IO long-polling, the page's fallback where WebSocket is refused)."""
    if n % 3 == 2:
        client = ChannelsClient(url, cookie=cookie)
    else:
        client = StreamClient(url, cookie=cookie, transport="polling" if n % 9 == 1 else "websocket").connect()
    for device_id in device_ids:
        client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": device_id})
    return client


def db_state(device_id: str) -> dict:
    """What the database holds, read directly (not through the snapshot code)."""
    close_old_connections()
    device = Device.objects.get(device_id=device_id)
    active = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()
    alarms = set(Alarm.objects.filter(device=device, state=AlarmState.ACTIVE).values_list("pk", flat=True))
    state = device.pump_state if device.last_seen_at else None  # never heard: none reported
    return {"seq": device.event_seq, "session": active.infusion_id if active else None, "alarms": alarms,
            "battery": device.battery_level, "pumpState": state}  # fmt: skip


def summary(state) -> dict:
    return {"seq": state.seq, "session": state.session["infusionId"] if state.session else None,
            "alarms": set(state.alarms), "battery": state.status["batteryLevel"],
            "pumpState": state.status["pumpState"]}  # fmt: skip


def assert_consistent(url: str, cookie: str, clients: list, device_id: str, *, final: int | None = None,
                      min_clients: int = 5, min_changes: int = 50) -> set[str]:  # fmt: skip
    """Every client's snapshot + events equals a fresh snapshot equals the database; returns the event names seen.

    `final` is the pump's settled seq when the caller waited for it (`stable_seqs`), else it is waited for here.
    """
    if final is None:
        final = wait_until(lambda: stable_seq(device_id), timeout=45, message="the pump's seq never settled")
    fresh = StreamClient(url, cookie=cookie).connect()
    try:
        fresh.subscribe(device_id)
        fresh_state = state_from_events(wait_for_seq(fresh, final, device_id))
    finally:
        fresh.close()
    snapshot = read_snapshot(device_id)
    assert snapshot.seq == final
    assert summary(fresh_state) == db_state(device_id), f"{device_id}: a fresh snapshot must equal the database"
    seen: set[str] = set()
    for n, client in enumerate(clients):
        try:
            received = wait_for_seq(client, final, device_id)
        except AssertionError as exc:
            got = [(e, d["seq"]) for e, d in client.events.device_events(device_id)]
            errors = client.events.named(events.ERROR)
            how = (f"{client.transport}, disconnected {client.disconnected.is_set()}"
                   if isinstance(client, StreamClient) else "channels")  # fmt: skip
            raise AssertionError(f"client {n} ({type(client).__name__}, {how}) never got {device_id}'s seq {final}: "
                                 f"subscribed {client.events.named(events.STREAM_SUBSCRIBED, device_id=device_id)}, "
                                 f"last received {got[-8:]}, errors {errors}") from exc  # fmt: skip
        seen |= {event for event, _ in received}
        snapshot_seq = client.events.named(events.STREAM_SUBSCRIBED, device_id=device_id)[0]["seq"]
        live = [data["seq"] for _, data in received if data["seq"] > snapshot_seq]
        assert live == list(range(snapshot_seq + 1, final + 1)), (
            f"client {n} ({type(client).__name__}): {device_id}'s events after its snapshot at {snapshot_seq} "
            f"missing, repeated or reordered: {live_faults(live, snapshot_seq, final, device_id)}"
        )
        mine, theirs = state_from_events(received).as_dict(), fresh_state.as_dict()
        assert mine == theirs, (
            f"client {n}: {device_id}'s snapshot + events differs from a fresh snapshot: {differences(mine, theirs)}; "
            f"its session and progress events: {session_and_progress(received)[-10:]}"
        )
    assert len(clients) >= min_clients, "clients subscribed at several moments"
    assert final > min_changes, f"too little traffic on {device_id} to prove anything ({final} changes)"
    return seen


def session_and_progress(received: list[tuple[str, dict]]) -> list[tuple]:
    """(seq, event, infusion id, status or receive time) of each `device:session` and `device:progress` received."""
    kept = []
    for event, data in received:
        if event == events.DEVICE_SESSION:
            kept.append((data["seq"], "session", data["session"].get("infusionId"), data["session"].get("status")))
        elif event == events.DEVICE_PROGRESS:
            body = data["progress"]
            kept.append((data["seq"], "progress", body.get("infusionId"), body.get("receivedAt")))
    return kept


def live_faults(live: list[int], snapshot_seq: int, final: int, device_id: str) -> dict:
    """What is wrong with a client's live seqs: missing ones (with their change-log rows), repeats, reorders."""
    expected = set(range(snapshot_seq + 1, final + 1))
    missing = sorted(expected - set(live))
    rows = ChangeLogEntry.objects.filter(device__device_id=device_id, seq__in=missing[:5])
    return {"missing": missing, "missing rows (id, seq, event)": list(rows.values_list("id", "seq", "event")),
            "repeated": sorted(seq for seq in set(live) if live.count(seq) > 1),
            "reordered at": [i for i in range(1, len(live)) if live[i] < live[i - 1]][:5],
            "received": len(live), "expected": len(expected)}  # fmt: skip


def differences(mine: dict, theirs: dict) -> dict:
    """The differing fields, one level into nested dicts."""
    diff = {}
    for key in mine.keys() | theirs.keys():
        a, b = mine.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
            if inner:
                diff[key] = inner
        elif a != b:
            diff[key] = (a, b)
    return diff


def stable_seq(device_id: str) -> int | None:
    """One pump's settled seq (`stable_seqs`), or None while it may still change."""
    settled = stable_seqs([device_id])
    return settled[device_id] if settled else None


def stable_seqs(device_ids: Sequence[str]) -> dict[str, int] | None:
    """The pumps' seqs once nothing is left that time alone would change: no command under way (each ends at its
    deadline), no pending start (it times out), and no change for longer than a silence takes to be alarmed."""
    close_old_connections()
    if Command.objects.filter(device__device_id__in=device_ids, state__in=COMMAND_UNSETTLED_STATES).exists():
        return None
    if InfusionSession.objects.filter(device__device_id__in=device_ids, status="pending").exists():
        return None
    first = seqs_of(device_ids)
    time.sleep(HEARTBEAT_TIMEOUT_S + 0.5)
    close_old_connections()
    return first if seqs_of(device_ids) == first else None


def seqs_of(device_ids: Sequence[str]) -> dict[str, int]:
    return dict(Device.objects.filter(device_id__in=device_ids).values_list("device_id", "event_seq"))


def wait_for_seq(client, seq: int, device_id: str) -> list[tuple[str, dict]]:
    """The pump's events the client got, once `seq` arrived and nothing more came for 0.2 s."""
    client.events.wait_for(lambda e, d: e.startswith("device:") and d.get("deviceId") == device_id
                           and d.get("seq") == seq, timeout=10)  # fmt: skip
    received = -1  # the rest of the events carrying that seq: a snapshot sends several, one by one
    while received != len(client.events.device_events(device_id)):
        received = len(client.events.device_events(device_id))
        time.sleep(0.2)
    return client.events.device_events(device_id)
