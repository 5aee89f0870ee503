"""`simulate_pump --free-run`: each pump starts demo infusions at its own screen, as a pump infusing without an order
(docs/simulator.md: the server raises `infusing_without_order`). Before (review 33, "noticed"), it answered a START
nobody sent: an `infusion` confirmation with an empty `infusionId`, refused by the schema, which raised a high
`unreadable_report` ("accepted a start in a message that could not be read"); its progress, with the same empty id,
was refused too, so the pump was never shown infusing. Now it names its infusion with an id of its own (1-64
characters, never one of the server's `inf_…`: docs/clinical-rules.md, "An id this pump never had, with no session on
the pump, is the pump's own infusion") and sends no confirmation: no START was answered."""

import asyncio
import json

import pytest
from django.utils import timezone

from devices.models import Alarm, DeadLetter, Device
from devices.states import AlarmState, PumpState
from realtime.bridge.ingest import InboundMessage
from realtime.simulator.fleet import DEMO_ORDER
from tests.factories import make_device
from tests.support.ingest import ingest

pytestmark = pytest.mark.django_db


def apply(messages, capture) -> None:
    batch = [InboundMessage(topic=m.topic, payload=json.dumps(m.payload).encode(), received_at=timezone.now(),
                            retain=False) for m in messages]  # fmt: skip
    ingest(batch, capture)


def free_run(pump, ticks: int) -> None:
    """The pump's first free-run infusion, `ticks` progress reports, then (with `ticks` large) its completion."""

    async def story() -> None:
        pump._free_run_start()
        for _ in range(ticks):
            pump.tick(1.0)
        for task in list(pump._tasks):  # the next free-run start, scheduled at completion
            task.cancel()

    asyncio.run(story())


def test_a_free_running_pump_is_shown_infusing_without_an_order(make_pump, django_capture_on_commit_callbacks):
    make_device("SIM_0001", has_presence=True)
    pump = make_pump("SIM_0001", free_run=DEMO_ORDER, speed=60)
    pump._on_connected()
    free_run(pump, ticks=3)
    sent = pump.link.published
    named = {m.payload.get("infusionId") for m in sent if "infusionId" in m.payload}
    assert "" not in named and len(named) == 1, f"the pump's infusion must have one id of its own: {named}"
    assert not [m for m in sent if m.topic.endswith("/infusion")], "no START was sent: nothing to confirm"
    apply(sent, django_capture_on_commit_callbacks)
    unreadable = list(Alarm.objects.filter(type="unreadable_report").values_list("message", flat=True))
    refused = list(DeadLetter.objects.values_list("reason", flat=True))
    assert not unreadable and not refused, f"the free-running pump's reports were refused: {unreadable} {refused}"
    device = Device.objects.get(device_id="SIM_0001")
    without_order = Alarm.objects.filter(device=device, type="infusing_without_order", state=AlarmState.ACTIVE)
    assert device.pump_state == PumpState.RUNNING and without_order.exists(), (
        f"the pump infusing on its own is shown {device.pump_state}, infusing_without_order raised: "
        f"{without_order.exists()}"
    )


def test_its_completion_shows_it_idle_and_clears_the_alarm(make_pump, django_capture_on_commit_callbacks):
    make_device("SIM_0001", has_presence=True)
    pump = make_pump("SIM_0001", free_run=DEMO_ORDER, speed=600)
    pump._on_connected()
    free_run(pump, ticks=40)
    assert pump.link.published[-1].payload["status"] == "idle", "the demo infusion did not complete"
    apply(pump.link.published, django_capture_on_commit_callbacks)
    device = Device.objects.get(device_id="SIM_0001")
    assert not Alarm.objects.filter(type="unreadable_report").exists() and not DeadLetter.objects.exists()
    assert device.pump_state == PumpState.IDLE
    assert not Alarm.objects.filter(type="infusing_without_order", state=AlarmState.ACTIVE).exists()


def test_each_free_run_infusion_has_an_id_of_its_own(make_pump):
    pump = make_pump("SIM_0001", free_run=DEMO_ORDER, speed=600)
    free_run(pump, ticks=40)
    first = next(m.payload["infusionId"] for m in pump.link.published if m.topic.endswith("/completion"))
    pump._free_run_start()
    second = pump.infusion.order.infusion_id
    assert first and second and first != second and len(second) <= 64 and not second.startswith("inf_")
