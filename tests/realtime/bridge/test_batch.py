"""Unit tests of one batch in the database: routine progress in bulk and coalesced, order per pump kept, guards."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, DeadLetter, Device, InfusionSession, MessageReceipt, ProgressSample
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from protocol import events
from realtime.bridge.batch import SHED, BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import APPLIED, DUPLICATE, FORWARDED, REJECTED, InboundMessage
from tests.factories import make_device, make_order
from tests.support.changes import RecordedChanges

pytestmark = pytest.mark.django_db


@pytest.fixture
def forwarded() -> RecordedChanges:
    """The changes the batch recorded in the change log, in order."""
    return RecordedChanges()


def running(device_id: str) -> InfusionSession:
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order(planned_volume_ml=100, planned_time_min=50))
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip
    return InfusionSession.objects.get(pk=session.pk)


def message(device_id: str, kind: str, body: dict, *, at_s: float = 0.0) -> InboundMessage:
    received_at = timezone.now() + timedelta(seconds=at_s)
    return InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(),
                          received_at=received_at)  # fmt: skip


def progress(device_id: str, delivered: float, seq: int, *, at_s: float = 0.0, **extra) -> InboundMessage:
    body = {"deliveredVolumeMl": delivered, "flowRate": 2.0, "status": "running", "seq": seq, "bootId": "b1", **extra}
    return message(device_id, "progress", body, at_s=at_s)


def ingest(batch, forwarded_changes, django_capture_on_commit_callbacks, *, guard=None):
    forwarded_changes.clear()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        return BatchIngest(guard or ProgressFloodGuard(rate_per_s=0, burst=1)).run(batch)


def test_progress_of_many_pumps_is_coalesced_to_the_newest_with_one_seq_each(
    forwarded, django_capture_on_commit_callbacks, settings
):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "PROGRESS_SAMPLE_INTERVAL_S": 1.0}
    sessions = {device_id: running(device_id) for device_id in ("P1", "P2")}
    seq_before = {d.device_id: d.event_seq for d in Device.objects.all()}
    batch = [progress(device_id, float(n), n, at_s=n * 0.6) for n in range(5) for device_id in ("P1", "P2")]
    outcomes = ingest(batch, forwarded, django_capture_on_commit_callbacks)
    assert outcomes[APPLIED] == 10 and outcomes[FORWARDED] == 2, outcomes
    for device_id, session in sessions.items():
        device = Device.objects.get(device_id=device_id)
        assert device.latest_progress["deliveredVolumeMl"] == 4.0, "the newest progress is the pump's latest"
        assert InfusionSession.objects.get(pk=session.pk).progress()["deliveredVolumeMl"] == 4.0
        pump_changes = [c for c in forwarded if c.device_id == device_id]
        assert [c.event for c in pump_changes] == [events.DEVICE_STATUS, events.DEVICE_PROGRESS], (
            "first heard: device:status (unknown → online), then ONE device:progress for five reports"
        )
        assert [c.seq for c in pump_changes] == [seq_before[device_id] + 1, seq_before[device_id] + 2]
        assert device.event_seq == seq_before[device_id] + 2, "the stored seq is the last forwarded one"
        assert pump_changes[1].body["progress"]["infusionId"] == session.infusion_id
        sampled = ProgressSample.objects.filter(session=session, delivered_volume_ml__isnull=False).count()
        assert sampled == 3, f"samples every second of receive time (0, 1.2, 2.4 s), got {sampled}"
    assert MessageReceipt.objects.count() == 10, "every message keeps its receipt"


def test_a_status_between_progress_sees_the_progress_before_it(forwarded, django_capture_on_commit_callbacks):
    running("P1")
    batch = [progress("P1", 1.0, 1), message("P1", "status", {"status": "paused"}), progress("P1", 2.0, 3)]
    ingest(batch, forwarded, django_capture_on_commit_callbacks)
    assert [c.event for c in forwarded if c.event != events.DEVICE_STATUS][:2] == [
        events.DEVICE_PROGRESS, events.DEVICE_SESSION
    ], "the progress before the pause is applied before it"  # fmt: skip
    assert forwarded[-1].event == events.DEVICE_PROGRESS
    assert [c.seq for c in forwarded] == list(range(forwarded[0].seq, forwarded[0].seq + len(forwarded))), (
        "seq must increase by one per forwarded change"
    )


def test_duplicates_are_applied_once_within_and_across_batches(forwarded, django_capture_on_commit_callbacks):
    running("P1")
    first = ingest([progress("P1", 1.0, 1), progress("P1", 1.0, 1)], forwarded, django_capture_on_commit_callbacks)
    again = ingest([progress("P1", 1.0, 1), progress("P1", 2.0, 2)], forwarded, django_capture_on_commit_callbacks)
    assert (first[APPLIED], first[DUPLICATE]) == (1, 1)
    assert (again[APPLIED], again[DUPLICATE]) == (1, 1)
    assert MessageReceipt.objects.count() == 2


def test_unknown_pumps_and_bad_progress_are_dead_lettered_while_the_rest_applies(
    forwarded, django_capture_on_commit_callbacks
):
    running("P1")
    batch = [progress("GHOST", 1.0, 1), message("P1", "progress", {"deliveredVolumeMl": -4}), progress("P1", 3.0, 2)]
    outcomes = ingest(batch, forwarded, django_capture_on_commit_callbacks)
    assert (outcomes[REJECTED], outcomes[APPLIED]) == (2, 1), outcomes
    assert set(DeadLetter.objects.values_list("reason", flat=True)) == {"unknown_device", "schema"}
    assert Device.objects.get(device_id="P1").latest_progress["deliveredVolumeMl"] == 3.0


def test_progress_without_a_session_raises_infusing_without_order_once(forwarded, django_capture_on_commit_callbacks):
    make_device("P1")
    ingest([progress("P1", 1.0, n) for n in range(3)], forwarded, django_capture_on_commit_callbacks)
    ingest([progress("P1", 2.0, 9)], forwarded, django_capture_on_commit_callbacks)
    alarm = Alarm.objects.get(device__device_id="P1", type="infusing_without_order")
    assert alarm.count == 1, "a repeat of the cause while the alarm is active is not news"


def test_a_flood_sheds_routine_progress_only(forwarded, django_capture_on_commit_callbacks):
    running("P1")
    guard = ProgressFloodGuard(rate_per_s=1, burst=3)
    flood = [progress("P1", float(n), n) for n in range(10)]
    others = [message("P1", "status", {"status": "running"}), message("P1", "error", {"type": "occlusion"}),
              progress("P1", 9.5, 50, status="paused")]  # fmt: skip
    outcomes = ingest(flood + others, forwarded, django_capture_on_commit_callbacks, guard=guard)
    assert outcomes[SHED] == 6, f"3 in the burst, and the newest routine one, pass: {outcomes}"
    assert guard.shed_total == 6
    applied = set(MessageReceipt.objects.values_list("device_seq", flat=True))
    assert applied == {0, 1, 2, 9, 50}, f"the burst's first 3 and the newest routine one are applied: {applied}"
    assert Alarm.objects.filter(device__device_id="P1", type="occlusion").exists(), "an alarm is never shed"
    assert Device.objects.get(device_id="P1").latest_progress["status"] == "paused", "paused progress is never shed"


def test_the_bulk_path_keeps_wards_clears_silence_alarms_and_costs_the_same_queries_for_many_pumps(
    forwarded, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    from devices.services.alarms import alarm_raise
    from devices.states import AlarmPriority, AlarmSource
    from tests.factories import make_user, make_ward

    for n in range(6):
        running(f"P{n}")
    nicu = make_ward("nicu")
    make_user("nicu-nurse", ward=nicu)  # a running pump moves only into a ward someone watches (`watchers.py`)
    Device.objects.filter(device_id="P5").update(ward=nicu)
    Device.objects.update(last_seen_at=timezone.now(), presence="online")  # heard before: no status change
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="P1"), type="communication_lost", priority=AlarmPriority.HIGH,
                    source=AlarmSource.SERVER, message="silent")  # fmt: skip
    batch = [progress(f"P{n}", 1.0, 1) for n in range(6)]
    # 2 savepoints, lock (pumps, wards, sessions, alarms), receipts (look, insert), rows (pumps, sessions),
    # samples, 2 releases, P1's alarm clear (4), the change log (one insert for the 6 progress changes, one
    # for each of the alarm clear's 2 changes): 20 for 6 pumps, none per pump
    with django_assert_max_num_queries(20):
        outcomes = ingest(batch, forwarded, django_capture_on_commit_callbacks)
    assert outcomes[APPLIED] == 6, outcomes
    wards = {change.device_id: change.ward_code for change in forwarded if change.event == events.DEVICE_PROGRESS}
    assert wards == {"P0": "icu", "P1": "icu", "P2": "icu", "P3": "icu", "P4": "icu", "P5": "nicu"}
    assert not Alarm.objects.filter(type="communication_lost", state="active").exists(), "heard again: cleared"
    assert Device.objects.get(device_id="P5").latest_progress["deliveredVolumeMl"] == 1.0


def test_a_history_point_stores_the_report_as_received(forwarded, django_capture_on_commit_callbacks, settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "PROGRESS_SAMPLE_INTERVAL_S": 1.0}
    session = running("P1")
    sent = progress("P1", 12.5, 1, volumeRemainingMl=87.5, timeRemainingMin=43, progressPercent=12.5)
    ingest([sent], forwarded, django_capture_on_commit_callbacks)
    stored = ProgressSample.objects.filter(session=session, delivered_volume_ml__isnull=False).get()
    point = (stored.recorded_at, stored.status, stored.delivered_volume_ml, stored.volume_remaining_ml,
             stored.time_remaining_min, stored.progress_percent, stored.flow_rate_ml_min)  # fmt: skip
    assert point == (sent.received_at, "running", 12.5, 87.5, 43.0, 12.5, 2.0), "the point should be the report"


def test_the_bulk_path_names_each_pumps_ward_read_with_its_row(forwarded, django_capture_on_commit_callbacks):
    from tests.factories import make_ward

    make_device("P1", ward=make_ward("icu"))
    Device.objects.create(device_id="P2")  # no ward
    ingest([progress("P1", 1.0, 1), progress("P2", 1.0, 1)], forwarded, django_capture_on_commit_callbacks)
    wards = {change.device_id: change.ward_code for change in forwarded if change.event == events.DEVICE_PROGRESS}
    assert wards == {"P1": "icu", "P2": None}, f"each change should carry its pump's ward, got {wards}"


def test_the_same_progress_twice_in_one_batch_is_applied_once(forwarded, django_capture_on_commit_callbacks):
    running("P1")
    outcomes = ingest([progress("P1", 1.0, 7), progress("P1", 1.0, 7)], forwarded, django_capture_on_commit_callbacks)
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (1, 1), f"one applied, its copy a duplicate: {outcomes}"
    assert MessageReceipt.objects.filter(device_seq=7).count() == 1
