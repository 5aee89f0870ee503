"""What a pump with a `bootId` does that is no restart, though its status's `uptime` now tells one under that bootId.

The detection by `seq` and uptime tried in 07d73a8..33a8ca1 took each of these for a reboot and ended running
infusions `interrupted` (review 17); the rule kept is the uptime alone (`devices/services/restarts.py`): a status's
`uptime` back by more than UPTIME_REORDER_TOLERANCE_MS, received after the last one, not retained, and not the
millis() wrap. The review-17 cases again, their statuses carrying `uptime` (the cases with a numeric `timestamp`
are in `test_receipts_no_false_restart.py`: a bootId pump's `timestamp` is not compared), and what a pump's reboot
under a reused bootId is not: a late message, a retained replay, a Wi-Fi blip, another bootId. Through the bridge's
real Committer and batch ingest.
"""

import json
from datetime import timedelta

import pytest

from devices.models import Device
from realtime.bridge.ingest import APPLIED, DUPLICATE, InboundMessage
from tests.factories import make_device
from tests.realtime.bridge.test_batch import running
from tests.realtime.bridge.test_batch_receipts import REUSED, START, Bridge, active_alarms, sent
from tests.realtime.bridge.test_receipts_no_false_restart import restarts, running_again, status_of

pytestmark = pytest.mark.django_db
WRAP = 2**32
UP = 600_000  # the pump has been up 10 minutes


def up_status(seq: int, at_s: float, uptime: float, value: str = "running", **fields) -> InboundMessage:
    """A status of P1 under the reused bootId, with its uptime (ms), received `at_s` s after the module's start."""
    return sent("P1", "status", seq, at_s, status=value, uptime=uptime, **fields)


def test_the_same_status_on_both_status_topics_is_one_message_and_no_restart_though_the_copy_comes_late():
    """One status on `devices/{id}/status` and the legacy `device/{id}/status`; the legacy copy of the first arrives
    after the second status (two topics: no order between them). A copy, and no reboot."""
    session = running("P1")
    first, second = (json.dumps({"deviceId": "P1", "bootId": REUSED, "seq": seq, "status": "running",
                                 "uptime": UP + 1000 * seq}).encode() for seq in (1, 2))  # fmt: skip
    outcomes = Bridge().commit([
        InboundMessage(topic="devices/P1/status", payload=first, received_at=START),
        InboundMessage(topic="devices/P1/status", payload=second, received_at=START + timedelta(seconds=1)),
        InboundMessage(topic="device/P1/status", payload=first, received_at=START + timedelta(seconds=1.001)),
        InboundMessage(topic="device/P1/status", payload=second, received_at=START + timedelta(seconds=1.002)),
    ])  # fmt: skip
    assert (outcomes[APPLIED], outcomes[DUPLICATE]) == (2, 2), dict(outcomes)
    assert restarts("P1") == [], f"one status on two topics is no reboot: {restarts('P1')}"
    assert status_of(session) == "running", "the pump is infusing: the screen must not say interrupted"


def test_a_progress_and_a_status_of_one_tick_under_one_seq_are_no_restart():
    """A pump numbering its ticks: a progress and a `running` status (with its uptime) under one seq each second."""
    session = running("P1")
    bridge = Bridge()
    for tick in range(1, 4):
        outcomes = bridge.commit([
            sent("P1", "progress", tick, tick, status="running", deliveredVolumeMl=0.5 * tick, flowRate=2.0),
            up_status(tick, tick + 0.002, UP + 1000 * tick),
        ])  # fmt: skip
        assert outcomes[APPLIED] == 2, outcomes
    assert restarts("P1") == [], f"no reboot happened; the server recorded restarts: {restarts('P1')}"
    assert status_of(session) == "running" and "infusion_interrupted" not in active_alarms("P1")


def test_a_16_bit_seq_wrapping_while_the_uptime_goes_on_is_no_restart():
    """seq 0 after 65535 under the same bootId (a uint16 seq), the status's uptime going on: the same run."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([up_status(seq, seq, UP + 1000 * seq) for seq in (65533, 65534, 65535)])
    wrapped = bridge.commit([up_status(0, 65536, UP + 1000 * 65536), up_status(1, 65537, UP + 1000 * 65537)])
    assert wrapped[APPLIED] == 2, wrapped
    assert restarts("P1") == [], f"the uptime went on across the seq wrap: no reboot; told {restarts('P1')}"
    assert status_of(session) == "running"


@pytest.mark.parametrize(("last", "gap_s", "uptime", "restarted"), [
    (WRAP - 600_000, 2 * 3600, 1_200_000, False),  # queued through a 2 h bridge outage, sent 30 min after: the wrap
    (WRAP - 600, 1, 400, False),  # live, a second after the last: the wrap
    (WRAP - 600_000, 10, 2_500, True),  # 10 s after the last, but 10 min of uptime gone on across the wrap: a reboot
])  # fmt: skip
def test_the_millis_wrap_of_a_status_uptime_is_no_restart_even_after_an_outage(last, gap_s, uptime, restarted):
    """A status `uptime` that is a 32-bit millis(): it wraps after 49.7 days. A QoS 1 status queued at the broker
    while the bridge was away arrives long after it was sent, so the uptime gone on across the wrap is at most the
    receive times' gap (waiting only delays a message), never required to equal it (review 17's false restart)."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([up_status(100, 0, last)])
    outcomes = bridge.commit([up_status(101, gap_s, uptime)])
    assert outcomes[APPLIED] == 1, outcomes
    assert bool(restarts("P1")) is restarted, f"uptime {last} then {uptime}, {gap_s} s later: {restarts('P1')}"
    assert status_of(session) == ("interrupted" if restarted else "running")


def test_a_late_message_of_a_boot_id_heard_again_after_another_boot_is_no_restart():
    """bootId A, then B, then A again: two restarts (new bootIds), the A run's uptime compared with its own only; a
    late status of the new A run (overtaken, its uptime a second back) is no third."""
    make_device("P1")
    bridge = Bridge()
    bridge.commit([up_status(seq, seq, UP + 1000 * seq, "idle") for seq in range(1, 6)])
    bridge.commit([InboundMessage(topic="devices/P1/status", received_at=START + timedelta(seconds=100),
                                  payload=json.dumps({"bootId": "B", "seq": 1, "status": "idle",
                                                      "uptime": 90_000_000}).encode())])  # fmt: skip
    bridge.commit([up_status(1, 200, 900, "idle")])  # A again, 900 ms up: a restart, told (new bootId)
    session = running_again("P1")
    outcomes = bridge.commit([up_status(2, 301, 61_000), up_status(4, 303, 63_000),
                              up_status(3, 303.5, 62_000)])  # late  # fmt: skip
    assert outcomes[APPLIED] == 3, outcomes
    assert len(restarts("P1")) == 2, f"two real restarts (A->B, B->A), no third: {restarts('P1')}"
    assert status_of(session) == "running", "a late message of the current run is no restart"


def test_a_fresh_copy_of_an_old_clearing_does_not_clear_a_newer_occlusion():
    """An old `occlusion_cleared` retransmitted (DUP 0) after a newer occlusion and a tick of progress and status
    under one seq: a duplicate, never applied again; the tick's status (uptime going on) told no restart."""
    make_device("P1", has_presence=True)
    bridge = Bridge()
    bridge.commit([up_status(0, 0, UP, "online"), sent("P1", "error", 1, 1, type="occlusion", severity="high"),
                   sent("P1", "error", 2, 2, type="occlusion_cleared", severity="high")])  # fmt: skip
    bridge.commit([sent("P1", "error", 3, 3, type="occlusion", severity="high", message="occluded again")])
    bridge.commit([sent("P1", "progress", 4, 4, status="running", deliveredVolumeMl=1.0, flowRate=2.0),
                   up_status(4, 4.002, UP + 4000)])  # one tick, one seq  # fmt: skip
    copy = bridge.commit([sent("P1", "error", 2, 4.5, type="occlusion_cleared", severity="high")])
    assert copy[DUPLICATE] == 1, copy
    assert "occlusion" in active_alarms("P1") and restarts("P1") == [], (active_alarms("P1"), restarts("P1"))


def test_a_late_status_within_the_reordering_tolerance_is_no_restart_and_keeps_the_uptime_mark():
    """A QoS 1 status retransmitted after a reconnect, overtaken by newer ones: its uptime 20 s back. No restart,
    and the pump's mark stays at the newest uptime (a reboot after it is still compared with that one)."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([up_status(10, 0, UP), up_status(12, 20, UP + 20_000)])
    late = bridge.commit([up_status(11, 21, UP)])
    assert late[APPLIED] == 1 and restarts("P1") == [], (dict(late), restarts("P1"))
    assert Device.objects.get(device_id="P1").last_uptime_ms == UP + 20_000, "a late status set the mark back"
    assert status_of(session) == "running"


def test_a_status_received_before_the_last_uptime_is_no_restart():
    """Received no later than the last uptime (another bridge host whose clock is behind, after a slot handover):
    older news, never a restart, whatever its uptime says."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([up_status(10, 60, UP)])
    outcomes = bridge.commit([up_status(11, 59, 2_500)])
    assert outcomes[APPLIED] == 1 and restarts("P1") == [], (dict(outcomes), restarts("P1"))
    assert status_of(session) == "running"


def test_a_retained_status_replayed_with_the_uptime_of_the_pumps_boot_is_no_restart():
    """The pump's retained `online` (sent at its boot, uptime 4,200 ms) replayed on every resubscribe of the bridge
    (retain 1) while the pump is 10 minutes up: state, not news. The live status after it is no restart either."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([up_status(1, 0, 4_200, "online"), up_status(2, 1, UP)])
    replay = bridge.commit([sent("P1", "status", 3, 600, retain=True, status="online", uptime=4_100)])
    bridge.commit([up_status(4, 601, UP + 601_000)])
    assert restarts("P1") == [], f"a retained replay is no reboot: {restarts('P1')} ({dict(replay)})"
    assert status_of(session) == "running"


def test_a_wifi_blip_last_will_then_online_with_the_uptime_gone_on_is_no_restart():
    """The broker's Last Will (no uptime) on a lost connection, then the pump's `online` on reconnecting, its uptime
    gone on: the same run (the reboot, uptime back, is told: test_reboot_under_a_reused_boot_id.py)."""
    session = running("P1")
    bridge = Bridge()
    bridge.commit([up_status(7, 0, UP)])
    bridge.commit([InboundMessage(topic="devices/P1/status", received_at=START + timedelta(seconds=30),
                                  payload=json.dumps({"deviceId": "P1", "status": "offline",
                                                      "bootId": REUSED}).encode())])  # fmt: skip
    bridge.commit([up_status(8, 45, UP + 44_000, "online")])
    assert restarts("P1") == [], f"a lost connection is no reboot: {restarts('P1')}"
    assert status_of(session) == "running"


def test_a_new_boot_id_starts_its_own_uptime_on_the_progress_path_too():
    """A routine progress (the bulk path) with a new bootId is a restart; the new run's uptime is not compared with
    the old run's: its next statuses, uptime low and going on, tell no second restart."""
    running("P1")
    bridge = Bridge()
    bridge.commit([up_status(1, 0, UP), up_status(2, 1, UP + 1000)])
    bridge.commit([of_boot_b("progress", 20, seq=1, status="running", deliveredVolumeMl=0.1, flowRate=2.0)])
    bridge.commit([of_boot_b("status", 21, seq=2, status="idle", uptime=5_000)])
    bridge.commit([of_boot_b("status", 22, seq=3, status="idle", uptime=6_000)])
    assert restarts("P1") == ["new bootId B"], f"one restart (the new bootId), no second: {restarts('P1')}"
    assert Device.objects.get(device_id="P1").last_uptime_ms == 6_000


def of_boot_b(kind: str, at_s: float, **body) -> InboundMessage:
    """A message of P1 under the bootId B, received `at_s` s after the module's start."""
    return InboundMessage(topic=f"devices/P1/{kind}", received_at=START + timedelta(seconds=at_s),
                          payload=json.dumps({"deviceId": "P1", "bootId": "B", **body}).encode())  # fmt: skip
