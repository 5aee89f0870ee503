"""Review 17: what the restart detection under a reused bootId (07d73a8..33a8ca1, removed) took for restarts, and
what a copy did after one. A restart is a new bootId (docs/protocol.md, "Copies"); a message is its key, kind and
payload. Through the bridge's real Committer and batch ingest (tests/realtime/bridge/test_batch_receipts.py)."""

import json
from datetime import timedelta

import pytest
from django.db import transaction

from devices.models import DeviceEvent, InfusionSession
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from realtime.bridge.ingest import APPLIED, DUPLICATE, InboundMessage
from tests.factories import make_device, make_order
from tests.realtime.bridge.test_batch import running
from tests.realtime.bridge.test_batch_receipts import REUSED, START, Bridge, active_alarms, sent

pytestmark = pytest.mark.django_db


def restarts(device_id: str) -> list[str]:
    return list(DeviceEvent.objects.filter(device__device_id=device_id, kind="pump.restarted")
                .values_list("payload__why", flat=True))  # fmt: skip


def status_of(session: InfusionSession) -> str:
    return InfusionSession.objects.get(pk=session.pk).status


def test_the_same_status_on_the_legacy_and_the_new_status_topic_is_one_message_and_no_restart():
    """A firmware in transition publishes its status on both `devices/{id}/status` and the legacy `device/{id}/
    status` (the bridge subscribes to both), the same bytes: one message, its second copy a duplicate. A digest
    over the raw topic made it "other bytes under a used key", applied twice (and taken for a reboot)."""
    session = running("P1")
    bridge = Bridge()
    body = {"deviceId": "P1", "bootId": REUSED, "status": "running", "timestamp": 5000}
    for seq in (1, 2):
        payload = json.dumps({**body, "seq": seq}).encode()
        at = START + timedelta(seconds=seq)
        outcomes = bridge.commit([InboundMessage(topic="devices/P1/status", payload=payload, received_at=at),
                                  InboundMessage(topic="device/P1/status", payload=payload,
                                                 received_at=at + timedelta(milliseconds=1))])  # fmt: skip
        assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (1, 1), f"one status on two topics: {dict(outcomes)}"
    assert restarts("P1") == [], f"the same status on two topics is no reboot: {restarts('P1')}"
    assert status_of(session) == "running", "the pump is infusing: the screen must not say interrupted"


def test_a_progress_and_a_status_of_one_tick_under_one_seq_are_no_restart():
    """A pump that numbers its ticks, not its messages (the original firmware's pair each second: progress, then a
    `running` status two ms later; a port of it that adds `seq` = tick): two messages of one run under one key,
    both applied, and no reboot (a5c1301's `seq <= last_seq` took the status for one every second)."""
    session = running("P1")
    bridge = Bridge()
    for tick in range(1, 4):
        at = 10 * tick
        outcomes = bridge.commit([
            sent("P1", "progress", tick, at, status="running", deliveredVolumeMl=0.5 * tick, flowRate=2.0,
                 timestamp=65510 + 1000 * tick),
            sent("P1", "status", tick, at + 0.002, status="running", timestamp=65512 + 1000 * tick),
        ])  # fmt: skip
        assert outcomes[APPLIED] == 2, outcomes
    assert restarts("P1") == [], f"no reboot happened; the server recorded restarts: {restarts('P1')}"
    assert status_of(session) == "running", "the pump is infusing: the screen must not say interrupted"
    assert "infusion_interrupted" not in active_alarms("P1")


def test_a_16_bit_seq_wrapping_while_uptime_goes_on_is_no_restart():
    """A firmware whose `seq` is a uint16 (or the MQTT packet id) wraps every 65,536 messages (about 9 h at 2 Hz):
    0 comes again under the same bootId with other bytes. The messages are applied, and no restart is told."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([sent("P1", "status", seq, 0.001 * seq, status="running", timestamp=1000.0 * seq)
                   for seq in (0, 1, 2)])  # fmt: skip
    bridge.commit([sent("P1", "status", seq, 30000 + seq - 65534, status="running", timestamp=65_530_000.0 + seq)
                   for seq in (65534, 65535)])  # fmt: skip
    wrapped = bridge.commit([sent("P1", "status", 0, 30002, status="running", timestamp=65_531_600.0),
                             sent("P1", "status", 1, 30003, status="running", timestamp=65_532_600.0)])  # fmt: skip
    assert wrapped[APPLIED] == 2, wrapped
    assert restarts("P1") == [], f"uptime went on across the seq wrap: no reboot; told {restarts('P1')}"
    assert status_of(session) == "running"


def test_millis_wrapping_while_the_bridge_was_away_is_no_restart_of_a_pump_with_a_boot_id():
    """A pump with a bootId, QoS 1 and its 32-bit `millis()` as `timestamp`: a status queued through a two-hour
    bridge outage arrives after the wrap, seq gone on by one. The uptime of a pump that sends a bootId tells no
    restart (the wrap check compares receive times, which an outage stretches)."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([sent("P1", "status", 100, 0, status="running", timestamp=2.0**32 - 600_000)])
    backlog = bridge.commit([sent("P1", "status", 101, 2 * 3600, status="running", timestamp=1_200_000)])
    assert backlog[APPLIED] == 1, backlog
    assert restarts("P1") == [], f"seq went on by one across a millis() wrap: no restart, told {restarts('P1')}"
    assert status_of(session) == "running"


def test_a_late_message_of_a_boot_id_heard_again_after_another_boot_is_no_restart():
    """A pump whose bootId comes from a small space runs as A, then B, then A again: two restarts (new bootIds).
    A late message of the new A run (a QoS 0 report overtaking a queued QoS 1 one) is no third."""
    make_device("P1")
    bridge = Bridge()
    bridge.commit([sent("P1", "status", seq, seq, status="idle", timestamp=1000 * seq) for seq in range(1, 6)])
    bridge.commit(
        [
            InboundMessage(
                topic="devices/P1/status",
                received_at=START + timedelta(seconds=100),
                payload=json.dumps({"bootId": "B", "seq": 1, "status": "idle"}).encode(),
            )
        ]
    )
    bridge.commit([sent("P1", "status", 1, 200, status="idle", timestamp=900)])  # A again: a restart, told
    session = running_again("P1")
    outcomes = bridge.commit([sent("P1", "status", 2, 301, status="running", timestamp=61000),
                              sent("P1", "status", 4, 303, status="running", timestamp=63000),
                              sent("P1", "status", 3, 303.5, status="running", timestamp=62000)])  # late  # fmt: skip
    assert outcomes[APPLIED] == 3, outcomes
    assert len(restarts("P1")) == 2, f"two real restarts (A->B, B->A), no third: {restarts('P1')}"
    assert status_of(session) == "running", "a late message of the current run is no restart"


def running_again(device_id: str) -> InfusionSession:
    """An infusion started and confirmed on a pump registered before."""
    session = infusion_start(device_id=device_id, order=make_order(planned_volume_ml=100, planned_time_min=50))
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip
    return InfusionSession.objects.get(pk=session.pk)


def test_a_fresh_copy_of_an_old_clearing_does_not_clear_a_newer_occlusion():
    """esp-mqtt retransmits a QoS 1 publish whose PUBACK is late, on the same connection; the broker forwards each
    copy as a new PUBLISH, DUP=0 (MQTT 5 3.3.1.1). The copy of an old `occlusion_cleared` (seq 2) arriving after a
    newer occlusion (seq 3) and a tick is a duplicate: `message_receipt_reclaim` applied it again after a (false)
    restart, clearing the newer occlusion."""
    make_device("P1", has_presence=True)
    bridge = Bridge()
    bridge.commit([sent("P1", "error", 1, 1, type="occlusion", severity="high"),
                   sent("P1", "error", 2, 2, type="occlusion_cleared", severity="high")])  # PUBACK late  # fmt: skip
    bridge.commit([sent("P1", "error", 3, 3, type="occlusion", severity="high", message="occluded again")])
    bridge.commit([sent("P1", "progress", 4, 4, status="running", deliveredVolumeMl=1.0, flowRate=2.0),
                   sent("P1", "status", 4, 4.002, status="running")])  # one tick, one seq  # fmt: skip
    copy = bridge.commit([sent("P1", "error", 2, 4.5, type="occlusion_cleared", severity="high")])  # DUP=0
    assert "occlusion" in active_alarms("P1"), (
        f"a copy of the old clearing cleared the newer occlusion: {dict(copy)}; restarts told {restarts('P1')}"
    )
    assert copy[DUPLICATE] == 1, copy
