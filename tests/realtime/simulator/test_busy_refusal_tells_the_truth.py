"""A busy simulated pump refuses a START (`confirmed: false`, `reason: pump_busy`, docs/simulator.md) and then says
what it is doing, never `idle` while it infuses (review 33, finding 3). Before, `ModernFirmware.rejected` followed
every refusal with `status: idle`: the server, taking its word, ended the running order `interrupted` ("the pump
reported idle before the infusion finished"), raised `infusion_interrupted` and showed the pump idle while it pumped.
The demo and the tests drive this simulator, so they carried a lie of the pump's own."""

import json

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.states import AlarmState, PumpState, SessionStatus
from realtime.bridge.ingest import InboundMessage
from realtime.simulator.pump import PumpPhase
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest

pytestmark = pytest.mark.django_db


def start_of(session: InfusionSession) -> dict:
    return {"infusionId": session.infusion_id, **session.order}


def applied(pump, since: int, capture) -> list[str]:
    """What the pump published from message `since` on, applied by the bridge's real ingest; its statuses."""
    published = pump.link.published[since:]
    batch = [InboundMessage(topic=m.topic, payload=json.dumps(m.payload).encode(), received_at=timezone.now(),
                            retain=False) for m in published]  # fmt: skip
    ingest(batch, capture)
    return [m.payload.get("status") for m in published if m.topic.endswith("/status")]


def test_a_busy_pump_refusing_a_start_never_says_it_is_idle(make_pump, django_capture_on_commit_callbacks):
    make_device("PUMP_0001", has_presence=True)
    make_user("r33s-nurse")
    running = confirmed_order("PUMP_0001", drug="Heparin", bolus_enabled=False)
    pump = make_pump("PUMP_0001")
    pump.handle_command("START_INFUSION", start_of(running))
    pump.accept()
    pump.tick(1.0)
    first = len(pump.link.published)
    # a second START reaches the running pump (a START redelivered by the broker, or another server's order)
    pump.handle_command("START_INFUSION", {**start_of(running), "infusionId": "inf_other"})
    statuses = applied(pump, first, django_capture_on_commit_callbacks)
    running.refresh_from_db()
    state = Device.objects.get(device_id="PUMP_0001").pump_state
    assert "idle" not in statuses and running.status == SessionStatus.RUNNING and state == PumpState.RUNNING, (
        f"the pump, still infusing, published {statuses} after refusing the START as busy; the server now shows "
        f"the running order {running.status} ({running.status_reason!r}) and the pump {state}"
    )
    assert statuses == ["running"], f"after its refusal the pump says what it does, naming its infusion: {statuses}"
    interrupted = Alarm.objects.filter(type="infusion_interrupted", state=AlarmState.ACTIVE)
    assert not interrupted.exists(), "a refusal by a pump that goes on infusing interrupted nothing"


def test_a_paused_pump_refusing_a_start_says_it_is_paused(make_pump):
    pump = make_pump("PUMP_0001")
    pump.handle_command("START_INFUSION", {"infusionId": "A", "flowRateMlMin": 2.0, "plannedVolumeMl": 30,
                                           "plannedTimeMin": 15})  # fmt: skip
    pump.accept()
    pump.handle_command("PAUSE_INFUSION", {"infusionId": "A"})
    first = len(pump.link.published)
    pump.handle_command("START_INFUSION", {"infusionId": "B", "flowRateMlMin": 2.0, "plannedVolumeMl": 30,
                                           "plannedTimeMin": 15})  # fmt: skip
    after = pump.link.published[first:]
    assert [(m.topic.rsplit("/", 1)[-1], m.payload.get("confirmed", m.payload.get("status"))) for m in after] == [
        ("infusion", False), ("status", "paused")], [m.payload for m in after]  # fmt: skip
    assert after[1].payload["infusionId"] == "A" and pump.phase == PumpPhase.PAUSED


def test_a_person_rejecting_at_the_pump_leaves_it_idle(make_pump):
    pump = make_pump("PUMP_0001")
    pump.handle_command("START_INFUSION", {"infusionId": "A", "flowRateMlMin": 2.0, "plannedVolumeMl": 30,
                                           "plannedTimeMin": 15})  # fmt: skip
    first = len(pump.link.published)
    pump.reject()
    after = pump.link.published[first:]
    assert after[0].payload["reason"] == "rejected_at_pump" and after[-1].payload["status"] == "idle"


def test_a_pump_showing_another_start_refuses_with_nothing_more(make_pump):
    pump = make_pump("PUMP_0001")
    pump.handle_command("START_INFUSION", {"infusionId": "A", "flowRateMlMin": 2.0, "plannedVolumeMl": 30,
                                           "plannedTimeMin": 15})  # fmt: skip
    first = len(pump.link.published)
    pump.handle_command("START_INFUSION", {"infusionId": "B", "flowRateMlMin": 2.0, "plannedVolumeMl": 30,
                                           "plannedTimeMin": 15})  # fmt: skip
    after = pump.link.published[first:]
    assert [m.topic.rsplit("/", 1)[-1] for m in after] == ["infusion"], [m.payload for m in after]
    assert after[0].payload["reason"] == "pump_busy" and pump.pending.infusion_id == "A"
