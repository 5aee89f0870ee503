"""Unit tests of the committer: a message at fault is dead-lettered, the database's faults are retried, never lost."""

import json
import threading
from collections import Counter

import pytest
from django.db import OperationalError

from devices.models import Alarm, DeadLetter, DeliveryAttempt, Device
from realtime import metrics
from realtime.bridge.batch import BatchIngest
from realtime.bridge.commit import Committer
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device

pytestmark = pytest.mark.django_db
POISON = b'{"status": "online", "poison": true}'


class Crash(BaseException):
    """What a crash of the process looks like to the code around it: nothing catches it."""


class FaultyIngest(BatchIngest):
    """The real ingest, except that a message with `poison` in it raises `fault` (as a bug in a service would)."""

    def __init__(self, fault: BaseException) -> None:
        super().__init__(ProgressFloodGuard(rate_per_s=0, burst=1))
        self.fault = fault

    def run(self, batch, **options):
        if any(b"poison" in message.payload for message in batch):
            raise self.fault
        return super().run(batch, **options)


def status(battery: int, *, redelivered: bool = False, device_id: str = "PUMP_C") -> InboundMessage:
    body = json.dumps({"status": "idle", "batteryLevel": battery}).encode()
    return InboundMessage(topic=f"devices/{device_id}/status", payload=body, redelivered=redelivered)


def committer_with(ingest: BatchIngest) -> tuple[Committer, list[InboundMessage]]:
    acknowledged: list[InboundMessage] = []
    committer = Committer(ingest=ingest, on_committed=lambda messages, _outcomes: acknowledged.extend(messages),
                          on_rollback=lambda: None, stop=threading.Event(), max_tries=3)  # fmt: skip
    return committer, acknowledged


def test_a_fault_that_escapes_the_message_guards_dead_letters_only_the_message_at_fault():
    make_device("PUMP_C")
    committer, acknowledged = committer_with(FaultyIngest(RuntimeError("a bug in a service")))
    poison = InboundMessage(topic="devices/PUMP_C/status", payload=POISON)
    batch = [status(10), poison, status(11)]
    committer.commit(batch)
    assert acknowledged == batch, "every message must be acknowledged, the poison one included"
    assert Device.objects.get(device_id="PUMP_C").battery_level == 11, "the good messages must be applied"
    letter = DeadLetter.objects.get()
    assert (letter.reason, letter.source) == ("internal_error", "PUMP_C")
    assert "a bug in a service" in letter.detail


def test_a_fault_on_a_pumps_error_topic_still_raises_its_unreadable_alarm():
    make_device("PUMP_C")
    committer, acknowledged = committer_with(FaultyIngest(RuntimeError("a bug")))
    committer.commit([InboundMessage(topic="devices/PUMP_C/error", payload=b'{"type": "poison"}')])
    assert len(acknowledged) == 1
    alarm = Alarm.objects.get(device__device_id="PUMP_C")
    assert (alarm.type, alarm.priority, alarm.source) == ("unreadable_alarm", "high", "server")


def test_a_redelivered_message_that_keeps_taking_the_process_down_is_dead_lettered_after_its_tries():
    make_device("PUMP_C")
    before, after = status(10, redelivered=True), status(11, redelivered=True)
    poison = InboundMessage(topic="devices/PUMP_C/status", payload=POISON, redelivered=True)
    redelivered = [before, poison, after]
    for run, expected_acks in ((1, 0), (2, 1), (3, 0)):  # three runs, each taken down by the same message
        committer, acknowledged = committer_with(FaultyIngest(Crash()))
        with pytest.raises(Crash):
            committer.commit(redelivered)
        assert len(acknowledged) == expected_acks, f"run {run}: acknowledged {acknowledged}"
        redelivered = [message for message in redelivered if message not in acknowledged]
        tries = dict(DeliveryAttempt.objects.values_list("key", "attempts"))
        assert max(tries.values()) == run, f"run {run}: each try must be counted before it begins: {tries}"
    assert redelivered == [poison, after]
    committer, acknowledged = committer_with(FaultyIngest(Crash()))
    committer.commit(redelivered)
    assert acknowledged == [poison, after], "the poison message must be acknowledged at last, and the next"
    assert DeadLetter.objects.get().reason == "repeated_failure"
    assert Device.objects.get(device_id="PUMP_C").battery_level == 11, "the message behind it must be applied"
    assert not DeliveryAttempt.objects.exists()


def test_a_first_redelivery_is_committed_as_one_batch_and_its_tries_forgotten():
    make_device("PUMP_C")
    committer, acknowledged = committer_with(BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)))
    batch = [status(level, redelivered=True) for level in range(20, 30)]
    committer.commit(batch)
    assert acknowledged == batch and not DeliveryAttempt.objects.exists()
    assert Device.objects.get(device_id="PUMP_C").battery_level == 29


def test_a_database_fault_is_retried_unacknowledged_and_never_dead_lettered(monkeypatch):
    make_device("PUMP_C")
    failures = iter([OperationalError("database is locked"), OperationalError("disk I/O error")])
    real_run = BatchIngest.run
    seen_stalled = []

    def flaky_run(self, batch):
        fault = next(failures, None)
        if fault is not None:
            seen_stalled.append(stalled())
            raise fault
        return real_run(self, batch)

    monkeypatch.setattr(BatchIngest, "run", flaky_run)
    committer, acknowledged = committer_with(BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)))
    committer.commit([status(33)])
    assert len(acknowledged) == 1 and Device.objects.get(device_id="PUMP_C").battery_level == 33
    assert not DeadLetter.objects.exists(), "a database fault must never dead-letter a message"
    assert seen_stalled == [0.0, 1.0], "the stall must be reported while it lasts"
    assert stalled() == 0.0, "and cleared once the commit passed"


def stalled() -> float:
    return next(iter(metrics.DATABASE_STALLED.collect())).samples[0].value


def test_stopping_while_the_database_is_down_leaves_the_batch_unacknowledged(monkeypatch):
    def failing_run(self, batch):
        raise OperationalError("unable to open database file")

    monkeypatch.setattr(BatchIngest, "run", failing_run)
    committer, acknowledged = committer_with(BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)))
    committer.stop.set()
    committer.commit([status(1)])
    assert acknowledged == [] and Counter(DeadLetter.objects.values_list("reason", flat=True)) == Counter()


def test_a_failure_of_the_bulk_progress_path_sends_the_batch_one_by_one_and_loses_nothing(monkeypatch):
    """A batch's routine progress has no savepoint of its own: its failure rolls the batch back, and each message
    is then applied alone (where the bulk path keeps its savepoint and its own one-by-one fallback)."""
    from realtime.bridge import ingest

    for device_id in ("PUMP_A", "PUMP_B", "PUMP_C"):
        make_device(device_id)
    apply_many = ingest.progress_apply_many

    def failing_for_many(*, pumps, reports, **shared):
        if len(reports) > 1:
            raise RuntimeError("a bug of the bulk path")
        return apply_many(pumps=pumps, reports=reports, **shared)

    monkeypatch.setattr(ingest, "progress_apply_many", failing_for_many)
    committer, acknowledged = committer_with(BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)))
    batch = [InboundMessage(topic=f"devices/{device_id}/progress", payload=json.dumps(
        {"deliveredVolumeMl": volume, "seq": 1, "bootId": "b1"}).encode())
        for device_id, volume in (("PUMP_A", 1.0), ("PUMP_B", 2.0), ("PUMP_C", 3.0))]  # fmt: skip
    committer.commit(batch)
    assert acknowledged == batch, "every message acknowledged, each after its own commit"
    stored = dict(Device.objects.values_list("device_id", "latest_progress__deliveredVolumeMl"))
    assert stored == {"PUMP_A": 1.0, "PUMP_B": 2.0, "PUMP_C": 3.0}, f"every message applied: {stored}"
    assert not DeadLetter.objects.exists()
