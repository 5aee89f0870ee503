"""A pump infusing without an order can be stopped while an order waits on it; the order stays pending.

The original firmware ignores a START while it infuses, so an order placed on a busy pump stays pending up to the
confirmation timeout (longer while the broker is away). A pending order is not on the pump: the monitor's Stop of
the running infusion "without an order" (infusionId null) queues a STOP without a session, as with no order at all,
and the order stays pending (docs/clinical-rules.md, "A pump infusing without an order while an order waits").
Found by review: Stop was refused 409 `infusion_changed` ("it now has infusion X (pending)"), so the running
infusion (a wrong drug, a wrong rate) could not be stopped remotely until the order was cancelled or timed out.
"""

import pytest
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, Command, DeviceEvent, InfusionSession
from devices.services.commands import command_advance
from devices.services.requests import infusion_request, infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

RUNNING = {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 12.0}  # the original firmware: no infusionId


def busy_pump_with_an_order_waiting(device_id: str, capture) -> InfusionSession:
    """A pump infusing its own infusion, then an order placed on it that it ignores (it goes on infusing its own)."""
    make_device(device_id, last_seen_at=timezone.now())
    ingest([report(device_id, "progress", {**RUNNING, "timestamp": 120000})], capture)
    order = infusion_start(device_id=device_id, order=make_order(drug="Heparin"), user=make_user("doctor"))
    ingest([report(device_id, "progress", {**RUNNING, "deliveredVolumeMl": 12.5, "timestamp": 121000}, 1)], capture)
    return order


def test_stop_of_the_running_infusion_is_accepted_while_an_order_waits(django_capture_on_commit_callbacks):
    order = busy_pump_with_an_order_waiting("BUSY_S", django_capture_on_commit_callbacks)
    nurse = make_user("nurse")
    # The monitor shows the pump infusing without an order; the nurse's Stop dialog names it (infusionId null).
    stop = infusion_request(device_id="BUSY_S", kind=CommandKind.STOP_INFUSION, infusion_id=None, user=nurse)
    assert stop.kind == CommandKind.STOP_INFUSION and stop.session is None, "Stop of the unordered infusion refused"
    assert stop.payload["infusionId"] is None
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.PENDING, "the order must stay pending"
    audit = DeviceEvent.objects.get(kind="user.stop_infusion", user=nurse)
    assert audit.payload["orderWaiting"] == order.infusion_id, "the audit says which order was left waiting"


def test_stop_naming_the_pending_order_is_refused_with_cancel_start_instead(django_capture_on_commit_callbacks):
    order = busy_pump_with_an_order_waiting("BUSY_P", django_capture_on_commit_callbacks)
    with pytest.raises(PumpStreamError) as refused:
        infusion_request(device_id="BUSY_P", kind=CommandKind.STOP_INFUSION, infusion_id=order.infusion_id,
                         user=make_user("nurse"))  # fmt: skip
    assert refused.value.code == "illegal_transition" and "cancel the start" in str(refused.value)
    assert not Command.objects.filter(kind=CommandKind.STOP_INFUSION).exists(), "nothing may be queued"


def test_the_pump_stopping_leaves_the_order_pending_and_clears_the_unordered_alarm(django_capture_on_commit_callbacks):
    order = busy_pump_with_an_order_waiting("BUSY_D", django_capture_on_commit_callbacks)
    stop = infusion_request(device_id="BUSY_D", kind=CommandKind.STOP_INFUSION, infusion_id=None, user=make_user("n"))
    command_advance(device_id="BUSY_D", command_pk=stop.pk, to=CommandState.SENT, now=timezone.now())  # PUBACK
    ingest([report("BUSY_D", "status", {"status": "stopped"}, 2)], django_capture_on_commit_callbacks)
    assert Command.objects.get(pk=stop.pk).state == CommandState.DONE, "the pump stopped: the STOP is done"
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.PENDING, (
        "the pump stopping its own infusion is no report about the order waiting: it stays pending"
    )
    unordered = Alarm.objects.filter(device__device_id="BUSY_D", type="infusing_without_order")
    assert unordered.exists() and not unordered.filter(state=AlarmState.ACTIVE).exists(), "the alarm must clear"


def test_the_order_timing_out_after_the_stop_still_clears_the_confirm_screen(django_capture_on_commit_callbacks):
    order = busy_pump_with_an_order_waiting("BUSY_T", django_capture_on_commit_callbacks)
    stop = infusion_request(device_id="BUSY_T", kind=CommandKind.STOP_INFUSION, infusion_id=None, user=make_user("n"))
    command_advance(device_id="BUSY_T", command_pk=stop.pk, to=CommandState.SENT, now=timezone.now())  # PUBACK
    ingest([report("BUSY_T", "status", {"status": "stopped"}, 2)], django_capture_on_commit_callbacks)
    timed_out = infusion_time_out(infusion_id=order.infusion_id)
    assert "it reports infusing" not in timed_out.status_reason, f"the pump reports stopped: {timed_out.status_reason}"
    assert Command.objects.filter(kind=CommandKind.STOP_INFUSION, session=timed_out).exists(), (
        "the stopped pump may show the order's confirm screen: the time-out's STOP must clear it"
    )
