"""Receipts claimed for a run of one-by-one messages before their savepoints (`messages_prepare`): duplicates,
refusals, rollbacks, reboots, unknown pumps and order, through the real Committer and database."""

import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import DeadLetter, Device, DeviceEvent, InfusionSession, MessageReceipt
from realtime.bridge import ingest
from realtime.bridge.batch import SHED, BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets
from realtime.bridge.commit import Committer
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import APPLIED, DUPLICATE, REJECTED, InboundMessage
from tests.factories import make_device
from tests.realtime.bridge.test_batch import running

pytestmark = pytest.mark.django_db


class Bridge:
    """The bridge's commit path in-process: what it acknowledged and the outcomes of each commit."""

    def __init__(self, budgets: PumpBudgets | None = None) -> None:
        self.acknowledged: list[InboundMessage] = []
        self.outcomes: Counter[str] = Counter()
        self.committer = Committer(
            ingest=BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets), stop=threading.Event(), max_tries=3,
            on_committed=self._committed,
        )  # fmt: skip

    def _committed(self, messages: list[InboundMessage], outcomes: Counter[str]) -> None:
        self.acknowledged.extend(messages)
        self.outcomes.update(outcomes)

    def commit(self, batch: list[InboundMessage]) -> Counter[str]:
        before = Counter(self.outcomes)
        self.committer.commit(batch)
        return self.outcomes - before


def report(device_id: str, kind: str, seq: int, *, boot: str = "b1", retain: bool = False, **fields) -> InboundMessage:
    body = {**fields, "seq": seq, "bootId": boot}
    return InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(), retain=retain,
                          received_at=timezone.now() + timedelta(milliseconds=seq))  # fmt: skip


def status(device_id: str, seq: int, value: str = "testing", **kw) -> InboundMessage:
    return report(device_id, "status", seq, status=value, **kw)


def progress(device_id: str, seq: int, delivered: float, **kw) -> InboundMessage:
    return report(device_id, "progress", seq, deliveredVolumeMl=delivered, flowRate=2.0, status="running", **kw)


def events(device_id: str, kind: str = "mqtt.status") -> list[int]:
    return list(DeviceEvent.objects.filter(device__device_id=device_id, kind=kind).order_by("id")
                .values_list("device_seq", flat=True))  # fmt: skip


def receipts(device_id: str, boot: str = "b1") -> set[int]:
    return set(MessageReceipt.objects.filter(device__device_id=device_id, boot_id=boot)
               .values_list("device_seq", flat=True))  # fmt: skip


def refuse_first(monkeypatch, seq: int, *, error: Exception | None = None) -> list[int]:
    """`pump_report_apply` refuses the first report with `seq` (a PumpStreamError unless `error`); returns the seqs
    it refused."""
    apply, refused = ingest.pump_report_apply, []

    def refusing(**kwargs):
        if kwargs["report"].seq == seq and not refused:
            refused.append(seq)
            raise error or PumpStreamError("refused for the test", code="test_refusal")
        return apply(**kwargs)

    monkeypatch.setattr(ingest, "pump_report_apply", refusing)
    return refused


def test_the_same_status_twice_in_one_batch_is_applied_once():
    make_device("P1")
    bridge = Bridge()
    outcomes = bridge.commit([status("P1", 1), status("P1", 2), status("P1", 1), status("P1", 2)])
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (2, 2), outcomes
    assert events("P1") == [1, 2] and receipts("P1") == {1, 2}
    assert len(bridge.acknowledged) == 4


def test_a_status_repeated_in_a_later_batch_is_a_duplicate():
    make_device("P1")
    bridge = Bridge()
    bridge.commit([status("P1", 1), status("P1", 2)])
    outcomes = bridge.commit([status("P1", 2), status("P1", 3), status("P1", 1)])
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (1, 2), outcomes
    assert events("P1") == [1, 2, 3]


def test_a_refused_message_does_not_make_its_copy_later_in_the_same_batch_a_duplicate(monkeypatch):
    """The first of two messages with one seq+bootId is refused: the second must be judged on its own (applied),
    not dropped as a duplicate of a message that was never applied."""
    make_device("P1")
    refused = refuse_first(monkeypatch, 2)
    bridge = Bridge()
    outcomes = bridge.commit([status("P1", 1), status("P1", 2), status("P1", 3), status("P1", 2)])
    assert refused == [2]
    assert events("P1") == [1, 3, 2], f"seq 2 applied by its second copy; outcomes {dict(outcomes)}"
    assert (outcomes[APPLIED], outcomes[REJECTED], outcomes[DUPLICATE]) == (3, 1, 0), outcomes
    assert receipts("P1") == {1, 2, 3}
    assert DeadLetter.objects.filter(reason="test_refusal").count() == 1


def test_a_refused_message_and_its_two_copies_in_one_batch_apply_once(monkeypatch):
    make_device("P1")
    refuse_first(monkeypatch, 2)
    outcomes = Bridge().commit([status("P1", 2), status("P1", 2), status("P1", 2)])
    assert (outcomes[REJECTED], outcomes[APPLIED], outcomes[DUPLICATE]) == (1, 1, 1), outcomes
    assert events("P1") == [2] and receipts("P1") == {2}


def test_a_refused_message_is_applied_when_redelivered_in_a_later_batch_and_its_duplicate_after_that(monkeypatch):
    make_device("P1")
    refuse_first(monkeypatch, 1, error=RuntimeError("a bug the first time"))
    bridge = Bridge()
    assert bridge.commit([status("P1", 1), status("P1", 2)])[REJECTED] == 1
    assert receipts("P1") == {2}, "the refused message's claim is released"
    assert DeadLetter.objects.filter(reason="internal_error").count() == 1
    again = bridge.commit([status("P1", 1)])
    after = bridge.commit([status("P1", 1)])
    assert (again[APPLIED], after[DUPLICATE]) == (1, 1), (again, after)
    assert events("P1") == [2, 1]


def test_a_batch_rolled_back_by_a_locked_database_mid_run_is_retried_whole_and_counted_once(monkeypatch):
    make_device("P1")
    make_device("P2")
    apply, failures = ingest.pump_report_apply, []

    def locked_once(**kwargs):
        if kwargs["report"].seq == 3 and not failures:
            failures.append(kwargs["device_id"])
            raise OperationalError("database is locked")
        return apply(**kwargs)

    monkeypatch.setattr(ingest, "pump_report_apply", locked_once)
    bridge = Bridge()
    batch = [status("P1", 1), status("P2", 1), status("P1", 2), status("P1", 3), status("P1", 1), status("P2", 2)]
    outcomes = bridge.commit(batch)
    assert failures == ["P1"], "the database failed once, mid-run"
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (5, 1), outcomes
    assert events("P1") == [1, 2, 3] and events("P2") == [1, 2], "the rolled-back try left nothing behind"
    assert receipts("P1") == {1, 2, 3} and receipts("P2") == {1, 2}
    assert len(bridge.acknowledged) == len(batch) and not DeadLetter.objects.exists()


def test_unknown_pumps_mixed_with_known_ones_in_one_run_are_dead_lettered_and_leave_no_receipt():
    make_device("P1")
    make_device("P2")
    batch = [status("GHOST", 1), status("P1", 1), status("GHOST", 2), status("P2", 1), status("P1", 2),
             status("GHOST", 1)]  # fmt: skip
    outcomes = Bridge().commit(batch)
    assert (outcomes[APPLIED], outcomes[REJECTED]) == (3, 3), outcomes
    assert DeadLetter.objects.filter(reason="unknown_device").count() == 3
    assert events("P1") == [1, 2] and events("P2") == [1]
    assert MessageReceipt.objects.count() == 3


def test_a_pump_registered_by_a_message_earlier_in_the_run_is_known_to_the_messages_after_it(monkeypatch):
    """The pumps' ids are read once per run: a pump registered in the middle of it (on PostgreSQL the web app's
    commit lands between two statements of the bridge's; here the message before registers it) is still found,
    as it was when each message read its pump's id, and its receipt names its row."""
    make_device("P1")
    apply = ingest.pump_report_apply

    def registering(**kwargs):
        applied = apply(**kwargs)
        if kwargs["device_id"] == "P1":
            Device.objects.get_or_create(device_id="NEW", defaults={"ward": Device.objects.get(device_id="P1").ward})
        return applied

    monkeypatch.setattr(ingest, "pump_report_apply", registering)
    outcomes = Bridge().commit([status("P1", 1), status("NEW", 1), status("NEW", 1)])
    assert outcomes[APPLIED] + outcomes[REJECTED] + outcomes[DUPLICATE] == 3, outcomes
    assert outcomes[APPLIED] == 2, f"the pump registered mid-run is applied to: {dict(outcomes)}"
    assert events("NEW") == [1] and receipts("NEW") == {1}


def test_a_new_boot_mid_run_ends_the_session_and_the_new_boots_statuses_name_none():
    session = running("P1")
    bridge = Bridge()
    bridge.commit([status("P1", 1, "running")])
    batch = [status("P1", 2, "running"), status("P1", 1, "idle", boot="b2"), status("P1", 2, "idle", boot="b2"),
             status("P1", 2, "running"), status("P1", 1, "idle", boot="b2")]  # fmt: skip
    outcomes = bridge.commit(batch)
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (3, 2), outcomes
    assert InfusionSession.objects.get(pk=session.pk).status == "interrupted"
    named = list(DeviceEvent.objects.filter(device__device_id="P1", kind="mqtt.status").order_by("id")
                 .values_list("boot_id", "device_seq", "session_id"))  # fmt: skip
    assert named[:2] == [("b1", 1, session.pk), ("b1", 2, session.pk)]
    assert named[3:] == [("b2", 2, None)], f"after the restart no active session is named: {named}"
    assert receipts("P1") == {1, 2} and receipts("P1", "b2") == {1, 2}


def test_a_retained_status_replayed_twice_after_a_restart_applies_once():
    make_device("P1")
    retained = InboundMessage(topic="devices/P1/status", payload=b'{"status": "testing", "batteryLevel": 40}',
                              retain=True)  # fmt: skip
    Bridge().commit([retained])
    replay = InboundMessage(topic=retained.topic, payload=retained.payload, retain=True)
    outcomes = Bridge().commit([replay, InboundMessage(topic=retained.topic, payload=retained.payload, retain=True)])
    assert outcomes[DUPLICATE] == 2, f"a new bridge's replays are recognised by the stored digest: {outcomes}"
    assert DeviceEvent.objects.filter(kind="mqtt.status").count() == 1


def test_statuses_progress_and_alarms_of_one_pump_apply_in_arrival_order():
    running("P1")
    batch = [status("P1", 1, "running"), progress("P1", 2, 1.0), progress("P1", 3, 2.0),
             report("P1", "error", 4, type="occlusion", message="x"), progress("P1", 5, 3.0),
             status("P1", 6, "running"), progress("P1", 7, 4.0), status("P1", 8, "paused"), progress("P1", 9, 5.0),
             report("P1", "error", 10, type="air_in_line", message="y")]  # fmt: skip
    outcomes = Bridge().commit(batch)
    assert outcomes[APPLIED] == 10, outcomes
    assert receipts("P1") == set(range(1, 11))
    one_by_one = list(DeviceEvent.objects.filter(device__device_id="P1", kind__startswith="mqtt.").order_by("id")
                      .values_list("device_seq", flat=True))  # fmt: skip
    assert one_by_one == [1, 4, 6, 8, 10], one_by_one
    assert Device.objects.get(device_id="P1").latest_progress["deliveredVolumeMl"] == 5.0


def test_a_progress_and_a_status_under_one_seq_are_both_applied_in_arrival_order_and_their_copies_are_duplicates():
    """Two messages with one seq+bootId but other bytes are two messages: both are applied, in arrival order, though
    the first is routine progress (applied in bulk) and the second a status (claimed ahead for its run). Until the
    receipt kept the bytes, the status was dropped as a duplicate of the progress. Copies of both are duplicates."""
    running("P1")
    bridge = Bridge()
    outcomes = bridge.commit([progress("P1", 5, 1.0), status("P1", 5, "paused")])
    assert outcomes[APPLIED] == 2 and not outcomes[DUPLICATE], outcomes
    assert events("P1") == [5], "the status with the progress's seq is applied"
    assert (Device.objects.get(device_id="P1").latest_progress or {}).get("deliveredVolumeMl") == 1.0
    copies = bridge.commit([progress("P1", 5, 1.0), status("P1", 5, "paused")])
    assert copies[DUPLICATE] == 2 and not copies[APPLIED], copies


def test_one_pumps_failure_in_a_run_leaves_the_other_pumps_messages_applied(monkeypatch):
    make_device("P1")
    make_device("P2")
    apply = ingest.pump_report_apply

    def failing(**kwargs):
        if kwargs["device_id"] == "P1" and kwargs["report"].seq == 2:
            raise ValueError("P1's message breaks")
        return apply(**kwargs)

    monkeypatch.setattr(ingest, "pump_report_apply", failing)
    bridge = Bridge()
    outcomes = bridge.commit([status("P1", 1), status("P2", 2), status("P1", 2), status("P2", 3), status("P1", 3)])
    assert (outcomes[APPLIED], outcomes[REJECTED]) == (4, 1), outcomes
    assert events("P1") == [1, 3] and events("P2") == [2, 3]
    assert receipts("P1") == {1, 3} and receipts("P2") == {2, 3}, "only the failed message's claim is released"
    assert DeadLetter.objects.filter(reason="internal_error").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_pump_deleted_and_registered_anew_by_another_connection_mid_run_keeps_every_receipt(monkeypatch):
    """PostgreSQL (each statement sees the newest commits): after the run's pumps were read and its receipts
    claimed, another connection deletes the pump and registers it anew (a new row). Every message must end
    applied to the new row with its receipt on that row (a copy sent later is then a duplicate). The receipts
    claimed on the old row fail the deferred foreign key at COMMIT; the Committer then goes message by message."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's writer holds the whole file: nobody else can register a pump mid-batch")
    make_device("P1")
    raced = race_after_prepare(monkeypatch, "P1", again=True)
    bridge = Bridge()
    bridge.commit([status("P1", 1), status("P1", 2)])
    new_pk = Device.objects.get(device_id="P1").pk
    assert raced and receipts("P1") == {1, 2}, "the receipts are on the pump's new row"
    assert set(MessageReceipt.objects.values_list("device_id", flat=True)) == {new_pk}
    later = bridge.commit([status("P1", 2)])
    assert later[DUPLICATE] == 1, f"a copy after the commit is a duplicate: {dict(later)}"
    assert events("P1") == [1, 2]


def race_after_prepare(monkeypatch, device_id: str, *, again: bool) -> list[bool]:
    """Once the first run's pumps are read and its receipts claimed, another connection deletes the pump (and
    registers it anew); returns a list that holds True once that happened."""
    from realtime.bridge import batch as batch_module

    prepare, raced = batch_module.messages_prepare, []

    def prepare_then_race(items):
        prepared = prepare(items)
        if not raced:
            raced.append(True)
            thread = threading.Thread(target=_reregister, args=(device_id, again))
            thread.start()
            thread.join(10)
        return prepared

    monkeypatch.setattr(batch_module, "messages_prepare", prepare_then_race)
    return raced


def _reregister(device_id: str, again: bool) -> None:
    try:
        old = Device.objects.get(device_id=device_id)
        ward = old.ward
        old.delete()
        if again:
            Device.objects.create(device_id=device_id, ward=ward)
    finally:
        connection.close()


def test_a_message_whose_receipt_the_database_refuses_fails_alone_and_the_other_pumps_apply():
    """A `bootId` with a NUL passes the schema, but PostgreSQL stores no NUL in text: claiming the run's receipts
    fails for the whole run. The batch then goes message by message: the other pump's status is applied, and
    every message is acknowledged and accounted for (applied, or dead-lettered)."""
    make_device("P1")
    make_device("P2")
    bridge = Bridge()
    outcomes = bridge.commit([status("P1", 1, boot="b\x00ad"), status("P2", 1), status("P2", 2)])
    assert len(bridge.acknowledged) == 3
    assert events("P2") == [1, 2] and receipts("P2") == {1, 2}
    assert outcomes[APPLIED] + outcomes[REJECTED] == 3, outcomes
    if outcomes[REJECTED]:
        assert DeadLetter.objects.filter(topic="devices/P1/status").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_pump_deleted_by_another_connection_mid_run_is_dead_lettered_as_unknown(monkeypatch):
    """PostgreSQL: the pump is deleted after its run read the pumps' ids. Its messages are dead-lettered as from
    an unknown pump (as when each message read its pump's id just before), not as an internal error."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's writer holds the whole file: nobody else can delete a pump mid-batch")
    make_device("P1")
    make_device("P2")
    raced = race_after_prepare(monkeypatch, "P1", again=False)
    bridge = Bridge()
    outcomes = bridge.commit([status("P1", 1), status("P2", 1), status("P1", 2)])
    assert raced and not Device.objects.filter(device_id="P1").exists()
    assert (outcomes[APPLIED], outcomes[REJECTED]) == (1, 2), outcomes
    reasons = list(DeadLetter.objects.filter(topic="devices/P1/status").values_list("reason", flat=True))
    assert reasons == ["unknown_device", "unknown_device"], reasons
    assert events("P2") == [1] and set(MessageReceipt.objects.values_list("device_seq", flat=True)) == {1}


def test_an_alarm_shed_over_the_active_alarms_budget_leaves_no_receipt_so_it_applies_when_sent_again():
    make_device("P1")
    off = Budget(0, 1)
    full = Bridge(PumpBudgets(alarm=off, report=off, max_active_alarms=1))
    batch = [report("P1", "error", 1, type="occlusion"), report("P1", "error", 2, type="air_in_line"),
             status("P1", 3), report("P1", "error", 2, type="air_in_line")]  # fmt: skip
    outcomes = full.commit(batch)
    assert (outcomes[APPLIED], outcomes[SHED]) == (2, 2), f"both copies of the second alarm shed: {dict(outcomes)}"
    assert receipts("P1") == {1, 3}, "a shed alarm's claim is released"
    later = Bridge(PumpBudgets(alarm=off, report=off, max_active_alarms=5)).commit([batch[1]])
    assert later[APPLIED] == 1, f"the shed alarm sent again is applied, not a duplicate: {dict(later)}"
    assert events("P1", "mqtt.error") == [1, 2]


# A pump whose `bootId` repeats after a reboot (review 15, finding 2): an Arduino `random()` without `randomSeed`
# gives the same "random" boot id on every boot, and `seq` starts again at 0. A receipt counts a message as a
# duplicate only when its bytes are those of the message received under that key before (a redelivery or a retained
# replay is the same bytes); the same key with other bytes is another message, and shows the pump restarted.
REUSED = "0000002a"  # what an unseeded random() gives on every boot
START = timezone.now()


def sent(device_id: str, kind: str, seq: int, at_s: float, *, retain: bool = False, redelivered: bool = False,
         **fields) -> InboundMessage:  # fmt: skip
    """A message of the pump's boot `REUSED`, received `at_s` seconds after the module's start."""
    body = {"deviceId": device_id, "bootId": REUSED, "seq": seq, **fields}
    return InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(), retain=retain,
                          redelivered=redelivered, received_at=START + timedelta(seconds=at_s))  # fmt: skip


def active_alarms(device_id: str) -> list[str]:
    from devices.models import Alarm

    return sorted(Alarm.objects.filter(device__device_id=device_id, state="active").values_list("type", flat=True))


def test_an_alarm_after_a_reboot_with_the_same_boot_id_is_not_dropped():
    """The reviewer's case: seq 2 after the reboot is a high occlusion; before it, seq 2 was a door_open since
    cleared. Its bytes differ: it is raised, not dropped as a duplicate."""
    make_device("P1", has_presence=True)
    bridge = Bridge()
    bridge.commit([sent("P1", "status", 0, 0, status="online"), sent("P1", "status", 1, 1, status="idle"),
                   sent("P1", "error", 2, 2, type="door_open", severity="low"),
                   sent("P1", "error", 3, 3, type="door_open_cleared", severity="low")])  # fmt: skip
    outcomes = bridge.commit([sent("P1", "status", 0, 60, status="online"), sent("P1", "status", 1, 61, status="idle"),
                              sent("P1", "error", 2, 62, type="occlusion", severity="high",
                                   message="Downstream occlusion")])  # fmt: skip
    assert active_alarms("P1") == ["occlusion"], (
        f"the occlusion after the reboot (same bootId, seq 2 again, other bytes) is raised: outcomes {dict(outcomes)}"
    )
    assert outcomes[DUPLICATE] == 2, f"the statuses with the same bytes as before the reboot are duplicates: {outcomes}"


def test_a_reboot_with_the_same_boot_id_has_its_statuses_applied_and_shows_the_pump_idle():
    """Statuses carrying the pump's uptime as `timestamp` differ after a reboot under the same bootId: they are applied
    (the pump shows idle, and `idle` ends the running infusion by its own rule). The bridge tells no restart from a
    bootId pump's `timestamp` (any clock): only from a new bootId or its status's `uptime` going back
    (test_reboot_under_a_reused_boot_id.py; docs/protocol.md, "Copies")."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([sent("P1", "status", 0, 0, status="online", timestamp=1500),
                   sent("P1", "status", 1, 1, status="running", timestamp=2500),
                   sent("P1", "status", 2, 2, status="running", timestamp=3500)])  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == "running"
    outcomes = bridge.commit([sent("P1", "status", 0, 60, status="online", timestamp=1400),
                              sent("P1", "status", 1, 61, status="idle", timestamp=2400)])  # fmt: skip
    assert outcomes[APPLIED] == 2, f"both statuses of the new boot are applied: {dict(outcomes)}"
    assert Device.objects.get(device_id="P1").pump_state == "idle", "the screen shows the pump as it restarted"
    assert InfusionSession.objects.get(pk=session.pk).status != "running", "idle ends the running infusion"
    assert not DeviceEvent.objects.filter(device__device_id="P1", kind="pump.restarted").exists()


def test_a_redelivered_or_replayed_copy_is_still_a_duplicate_after_other_messages():
    """The guard's purpose is kept: the same bytes under the same key are applied once, whether the broker hands
    them back after an outage (DUP, hours later, after newer messages) or replays a retained copy."""
    make_device("P1", has_presence=True)
    bridge = Bridge()
    alarm = sent("P1", "error", 2, 2, type="occlusion", severity="high")
    cleared = sent("P1", "error", 3, 3, type="occlusion_cleared")
    bridge.commit([sent("P1", "status", 1, 1, status="online"), alarm, cleared])  # live: no retain flag
    hours_later = 6 * 3600
    outcomes = bridge.commit([
        sent("P1", "error", 2, hours_later, redelivered=True, type="occlusion", severity="high"),
        sent("P1", "error", 3, hours_later + 1, redelivered=True, type="occlusion_cleared"),
        sent("P1", "status", 1, hours_later + 2, retain=True, status="online"),
    ])  # fmt: skip
    assert outcomes[DUPLICATE] == 3 and outcomes[APPLIED] == 0, outcomes
    assert active_alarms("P1") == [], "the cleared occlusion is not raised again by its redelivered copy"
    assert events("P1", "mqtt.error") == [2, 3]


def test_a_reboot_with_the_same_boot_id_drops_the_new_runs_messages_identical_to_the_old_ones_until_one_differs():
    """The known limit (docs/protocol.md, "Copies"): a pump that reuses its bootId and sends, after a reboot, the very
    bytes it sent under the same seq before has those taken for copies, here an occlusion; the first message that
    differs is applied. Nothing tells the bytes of such a message from a copy's."""
    make_device("P1", has_presence=True)
    bridge = Bridge()
    bridge.commit([sent("P1", "status", 0, 0, status="online"),
                   sent("P1", "error", 1, 1, type="occlusion", severity="high"),
                   sent("P1", "error", 2, 2, type="occlusion_cleared")])  # fmt: skip
    reboot = bridge.commit([sent("P1", "status", 0, 60, status="online"),
                            sent("P1", "error", 1, 61, type="occlusion", severity="high"),
                            sent("P1", "error", 2, 62, type="door_open", severity="low")])  # fmt: skip
    assert (reboot[DUPLICATE], reboot[APPLIED]) == (2, 1), dict(reboot)
    assert active_alarms("P1") == ["door_open"], "the first message that differs is applied"


def test_a_late_message_with_a_lower_seq_never_seen_is_applied_and_is_no_restart():
    """Messages may arrive out of order (a QoS 0 report overtakes a queued QoS 1 one): a lower seq whose key no
    other message used is applied, and the running infusion goes on."""
    session = running("P1")
    bridge = Bridge()
    outcomes = bridge.commit([sent("P1", "status", 5, 0, status="running", timestamp=5000),
                              sent("P1", "status", 7, 1, status="running", timestamp=7000),
                              sent("P1", "status", 6, 2, status="running", timestamp=6000)])  # fmt: skip
    assert outcomes[APPLIED] == 3, outcomes
    assert InfusionSession.objects.get(pk=session.pk).status == "running", "a late message is no restart"
    assert not DeviceEvent.objects.filter(device__device_id="P1", kind="pump.restarted").exists()


def test_routine_progress_with_a_reused_key_and_other_bytes_is_applied_and_its_copy_is_a_duplicate():
    """The bulk path's receipts tell the same: progress of the new boot under a key used before is applied; the same
    bytes again are a duplicate."""
    running("P1")
    bridge = Bridge()
    bridge.commit([sent("P1", "progress", seq, seq, status="running", deliveredVolumeMl=float(seq), flowRate=2.0,
                        timestamp=10_000 + 1000 * seq) for seq in range(4)])  # fmt: skip
    after = sent("P1", "progress", 1, 60, status="running", deliveredVolumeMl=0.1, flowRate=2.0, timestamp=900)
    outcomes = bridge.commit([after, sent("P1", "progress", 1, 61, redelivered=True, status="running",
                                          deliveredVolumeMl=0.1, flowRate=2.0, timestamp=900)])  # fmt: skip
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (1, 1), outcomes
    assert Device.objects.get(device_id="P1").latest_progress["deliveredVolumeMl"] == 0.1


def test_a_receipt_from_before_digests_were_kept_still_stops_a_copy_and_not_a_fresh_message():
    """Receipts stored before the upgrade (migration 0023) have no digest (0). A retained or redelivered copy under
    such a key is taken for the message applied then (the broker replays retained messages on the first resubscribe
    after the upgrade); a fresh message under it is a message of its own."""
    device = make_device("P1")
    for seq in (1, 2, 3):
        MessageReceipt.objects.create(device=device, boot_id=REUSED, device_seq=seq, received_at=START)
    outcomes = Bridge().commit([sent("P1", "error", 1, 10, retain=True, type="occlusion_cleared"),
                                sent("P1", "status", 2, 11, redelivered=True, status="testing"),
                                sent("P1", "error", 3, 12, type="occlusion", severity="high")])  # fmt: skip
    assert (outcomes[DUPLICATE], outcomes[APPLIED]) == (2, 1), outcomes
    assert active_alarms("P1") == ["occlusion"]
