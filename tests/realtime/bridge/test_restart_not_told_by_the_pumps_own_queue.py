"""A status the pump queued while its link was down, arriving after the `online` it publishes on reconnecting, is
no reboot (review 21, finding 2); nor a Last Will built at connect with its uptime (finding 3), nor one status whose
uptime is 0 or negative (finding 4).

paho (the simulator's `PumpLink`, as esp-mqtt's outbox) keeps QoS 1 messages published while disconnected and sends
them again after the CONNACK, but `on_connect` runs first, and the firmware publishes its retained `online` there
(`SimulatedPump._on_connected`): on the wire the new `online` (uptime now) comes before the statuses queued during
the outage (their uptime then); probed with real Mosquitto and the simulator's own PumpLink and ModernFirmware:
`('online', 700000, seq 4)` then `('paused', 610000, seq 3)`, both retain 0. Taken for a reboot under the same
bootId (`restarts._boot_restart`, uptime back by more than 60 s), it ended the infusion `interrupted` with a high
`infusion_interrupted` at every Wi-Fi drop of more than a minute with a report queued, for every pump of today's
firmware. A reboot's uptime is at most the time since the pump's last message arrived (`restarts._booted_since`).
"""

import json
from datetime import timedelta

import pytest

from realtime.bridge.ingest import APPLIED, InboundMessage
from tests.realtime.bridge.test_batch import running
from tests.realtime.bridge.test_batch_receipts import START, Bridge, active_alarms
from tests.realtime.bridge.test_receipts_no_false_restart import restarts, status_of

pytestmark = pytest.mark.django_db
BOOT = "5f0c2a9e11d4"  # ModernFirmware: uuid4().hex[:12], new at every boot
UP = 600_000


def modern(kind: str, seq: int, at_s: float, **body) -> InboundMessage:
    """A message of P1 (today's firmware, QoS 1, not retained as delivered), received `at_s` s after the start."""
    payload = {"deviceId": "P1", **body, "seq": seq, "bootId": BOOT}
    return InboundMessage(topic=f"devices/P1/{kind}", payload=json.dumps(payload).encode(),
                          received_at=START + timedelta(seconds=at_s))  # fmt: skip


def test_a_pause_at_the_bedside_queued_during_a_link_loss_is_no_restart():
    """Running; the pump's Wi-Fi drops; a nurse pauses at the pump 10 s later (MANUAL_PAUSE and `paused`, uptime
    610,000, queued by paho); the link is back 90 s later: `online` (uptime 700,000) first, then the queued pair."""
    session = running("P1")
    ids = {"infusionId": session.infusion_id}
    bridge = Bridge()
    bridge.commit(
        [
            modern("status", 10, 0, status="running", uptime=UP, **ids),
            modern("progress", 11, 0.5, status="running", flowRate=2.0, deliveredVolumeMl=20.0, **ids),
        ]
    )
    bridge.commit([InboundMessage(topic="devices/P1/status", received_at=START + timedelta(seconds=50),
                                  payload=json.dumps({"deviceId": "P1", "status": "offline",
                                                      "bootId": BOOT}).encode())])  # the Last Will  # fmt: skip
    outcomes = bridge.commit([
        modern("status", 14, 100.0, status="online", uptime=UP + 100_000),  # on_connect: sent first
        modern("actions", 12, 100.01, action="MANUAL_PAUSE", source="device_screen", **ids),  # paho's queue
        modern("status", 13, 100.02, status="paused", uptime=UP + 10_000, **ids),
    ])  # fmt: skip
    assert outcomes[APPLIED] == 3, outcomes
    assert restarts("P1") == [], (
        f"the pump never rebooted (same bootId, seq and uptime of one run; its paused status was queued while its "
        f"link was down and sent after its reconnect's `online`): told {restarts('P1')}"
    )
    assert status_of(session) == "paused", f"paused at the bedside; the screen shows {status_of(session)}"
    assert "infusion_interrupted" not in active_alarms("P1"), active_alarms("P1")


def test_a_pause_and_resume_at_the_bedside_queued_during_a_link_loss_leave_the_infusion_running():
    """The same outage, the nurse paused and resumed at the pump meanwhile: the infusion runs on, its record too."""
    session = running("P1")
    ids = {"infusionId": session.infusion_id}
    bridge = Bridge()
    bridge.commit([modern("status", 10, 0, status="running", uptime=UP, **ids)])
    outcomes = bridge.commit([
        modern("status", 16, 100.0, status="online", uptime=UP + 100_000),
        modern("actions", 12, 100.01, action="MANUAL_PAUSE", source="device_screen", **ids),
        modern("status", 13, 100.02, status="paused", uptime=UP + 10_000, **ids),
        modern("actions", 14, 100.03, action="MANUAL_RESUME", source="device_screen", **ids),
        modern("status", 15, 100.04, status="running", uptime=UP + 30_000, **ids),
        modern("progress", 17, 101.0, status="running", flowRate=2.0, deliveredVolumeMl=21.0, **ids),
    ])  # fmt: skip
    assert outcomes[APPLIED] == 6, outcomes
    assert restarts("P1") == [], f"no reboot: told {restarts('P1')}"
    assert status_of(session) == "running" and "infusion_interrupted" not in active_alarms("P1"), (
        status_of(session),
        active_alarms("P1"),
    )  # (its parameters_unverified is the confirmation's, without them)


def test_a_last_will_built_at_connect_with_its_uptime_is_no_restart():
    """A Last Will is built when the pump connects and published by the broker when the link is lost, minutes or
    days later. A firmware that builds it as any other status, `uptime` included (the contract lists `uptime` among
    a status's fields; esp-mqtt's `lwt_msg` is set once at init), has it arrive with the uptime of its connect:
    under the same bootId that is "uptime went back", a reboot, at every Wi-Fi blip of a running pump."""
    session = running("P1")
    ids = {"infusionId": session.infusion_id}
    bridge = Bridge()
    bridge.commit([modern("status", 1, 0, status="online", uptime=4_200),  # connected 4.2 s after boot
                   modern("status", 2, 1, status="running", uptime=UP, **ids)])  # fmt: skip
    outcomes = bridge.commit(
        [
            InboundMessage(
                topic="devices/P1/status",
                received_at=START + timedelta(seconds=40),
                payload=json.dumps({"deviceId": "P1", "status": "offline", "bootId": BOOT, "uptime": 4_200}).encode(),
            )
        ]
    )
    assert outcomes[APPLIED] == 1, outcomes
    assert restarts("P1") == [], f"the broker published the pump's Last Will (a lost link): told {restarts('P1')}"
    assert status_of(session) == "running", f"the pump infuses on; the screen shows {status_of(session)}"


@pytest.mark.parametrize("glitch", [0, -1])
def test_one_status_with_a_zero_or_negative_uptime_is_no_restart_when_the_run_goes_on(glitch):
    """The schema takes any number as `uptime`. One status whose uptime is 0 or -1 (not read yet, an error value)
    between statuses of one run going on: the pump's next status continues the run, so nothing rebooted; at least
    the rule should not end the infusion on one value that the run's own next status contradicts."""
    session = running("P1")
    ids = {"infusionId": session.infusion_id}
    bridge = Bridge()
    bridge.commit([modern("status", 1, 0, status="running", uptime=UP, **ids)])
    bridge.commit([modern("status", 2, 1, status="running", uptime=glitch, **ids),
                   modern("status", 3, 2, status="running", uptime=UP + 2_000, **ids)])  # fmt: skip
    assert restarts("P1") == [] and status_of(session) == "running", (
        f"uptime {UP}, {glitch}, {UP + 2_000} under one bootId: told {restarts('P1')}; the infusion is shown "
        f"{status_of(session)}, alarms {active_alarms('P1')} (ended interrupted, then run again on evidence)"
    )
