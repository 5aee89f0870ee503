"""An alarm whose transaction commits long after a later change was published reaches the nurses already watching.

PostgreSQL hands out change-log ids before commit; each Daphne's publisher remembers an id it passed over and
looks it up again at each read. It used to forget it after 30 s ("longer than any transaction that appends
changes"), but production's own PostgreSQL config lets a session sit idle in a transaction for 60 s
(`deploy/postgresql/pumpstream.conf`), the lock timeout bounds each lock wait, not the transaction, and a bridge
paused mid-batch (a VM migration, a swap storm, a SIGSTOP) commits whenever it resumes: a high occlusion so
committed reached no screen, both nurses' screens "live" with no alarm and no resync, while a fresh subscriber's
snapshot showed it (review 38, F2). Now a gap is kept for as long as a transaction that could fill it is open
(`realtime/publisher.py::ChangePublisher._settle`). Here (PostgreSQL, Redis, two Daphnes) the real `alarm_raise` of
a high occlusion commits 35 s after it inserted, while another pump's change commits meanwhile, so both Daphnes'
publishers pass over the alarm's id: the nurses watching the pump on Daphne A and on Daphne B get the alarm.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.changes import changes_commit
from tests.support.sio import StreamClient, session_cookie

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="ids allocated before commit: PostgreSQL only"),
]
PUMP = "LATE"
OTHER = "OTHER"
HELD_S = 35.0  # past the 30 s after which a gap was forgotten; inside idle_in_transaction_session_timeout (60 s)


class SlowAlarmTransaction(threading.Thread):
    """The real `alarm_raise` of a high occlusion in a transaction that commits only on `release`."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.inserted = threading.Event()
        self.release = threading.Event()
        self.committed = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                device = device_lock(device_id=PUMP)
                alarm_raise(device=device, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                            severity_reported="high")  # fmt: skip
                self.inserted.set()
                assert self.release.wait(120), "the test never released the transaction"
            self.committed.set()
        finally:
            connection.close()


def alarms_of(client: StreamClient) -> list[dict]:
    return [data for data in client.events.named(events.DEVICE_ALARM) if data.get("deviceId") == PUMP]


def test_an_alarm_committed_35_s_after_its_id_was_passed_over_reaches_the_nurses_on_both_daphnes(daphnes_on_redis):
    ward = make_ward("icu")
    make_device(PUMP, ward=ward)
    make_device(OTHER, ward=ward)
    cookie = session_cookie(make_user("nurse", ward=ward))
    daphne_a, daphne_b = daphnes_on_redis(2)
    watchers = [StreamClient(daphne.url, cookie=cookie).connect() for daphne in (daphne_a, daphne_b)]
    other_watcher = StreamClient(daphne_a.url, cookie=cookie).connect()
    slow = SlowAlarmTransaction()
    try:
        for watcher in watchers:
            assert not alarms_of(watcher)
            reply, snapshot = watcher.subscribe(PUMP)
            assert reply == events.STREAM_SUBSCRIBED, snapshot
        assert other_watcher.subscribe(OTHER)[0] == events.STREAM_SUBSCRIBED
        slow.start()
        assert slow.inserted.wait(10), "the alarm's transaction never inserted"
        changes_commit(OTHER, [(events.DEVICE_PROGRESS, {"progress": {"n": 1}})])  # a higher id, committed now
        other_watcher.events.wait_for(lambda e, d: e == events.DEVICE_PROGRESS, timeout=10)  # A passed over the id
        time.sleep(HELD_S)  # the alarm's transaction stays open (idle in transaction)
        slow.release.set()
        assert slow.committed.wait(10), "the alarm's transaction never committed"
        deadline = time.monotonic() + 10
        while not all(alarms_of(watcher) for watcher in watchers) and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = StreamClient(daphne_a.url, cookie=cookie).connect()
        try:
            fresh.subscribe(PUMP)
            fresh.events.wait_for(lambda e, d: e == events.DEVICE_ALARM, timeout=5)
        finally:
            fresh.close()
        shown_fresh = [(data["alarm"]["key"], data["alarm"]["state"]) for data in alarms_of(fresh)]
        missing = [name for name, watcher in zip(("A", "B"), watchers, strict=True) if not alarms_of(watcher)]
        assert not missing, (
            f"the nurses watching {PUMP} on Daphne {missing} never got its high occlusion, committed 10 s ago "
            f"(still connected: {[watcher.client.connected for watcher in watchers]}; a fresh subscriber's snapshot "
            f"shows {shown_fresh}); their events: {[watcher.events.device_events(PUMP) for watcher in watchers]}"
        )
    finally:
        slow.release.set()
        for client in (*watchers, other_watcher):
            client.close()
