"""A pump's report about an older order goes to that order, never onto the order now on record (evidence wins).

Finding 1 of the review: order A timed out, the nurse reordered B, and the pump was running A after all. Its
progress or `status: running` naming A left A timed out and B pending, and A's progress was shown and stored as
B's. The original firmware (no `infusionId`), infusing without an order, ignores a new START, and its progress was
shown as the pending order's though the pump never received it.
"""

import pytest
from django.db import transaction

from devices.models import Alarm, DeadLetter, ProgressSample
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.requests import infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from protocol import events
from realtime.sio.snapshot import read_snapshot
from tests.factories import make_device, make_order
from tests.support.ingest import ingest
from tests.support.ingest import report as message

pytestmark = pytest.mark.django_db


def reordered_after_a_time_out(device_id: str, **order):
    """Order A timed out (the pump was slow); the nurse ordered B at once."""
    make_device(device_id)
    first = infusion_start(device_id=device_id, order=make_order())
    infusion_time_out(infusion_id=first.infusion_id)
    second = infusion_start(device_id=device_id, order=make_order(flow_rate_ml_min=1.0, planned_time_min=30.0, **order))
    return first, second


def shown_progress(device_id: str) -> list[tuple[str | None, float | None]]:
    return [(change.body["progress"].get("infusionId"), change.body["progress"].get("flowRate"))
            for change in read_snapshot(device_id).changes if change.event == events.DEVICE_PROGRESS]  # fmt: skip


@pytest.mark.parametrize(("kind", "body"), [
    ("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0, "volumeRemainingMl": 27.0}),
    ("status", {"status": "running"}),
])  # fmt: skip
def test_the_pump_infusing_the_timed_out_order_runs_it_and_cancels_the_newer_pending_one(
    kind, body, django_capture_on_commit_callbacks
):
    first, second = reordered_after_a_time_out("OLDER_RUN")
    ingest([message("OLDER_RUN", kind, {**body, "infusionId": first.infusion_id})], django_capture_on_commit_callbacks)
    first.refresh_from_db()
    second.refresh_from_db()
    late = Alarm.objects.filter(session=first, type="confirmed_late", state=AlarmState.ACTIVE).exists()
    assert (first.status, second.status, late) == (SessionStatus.RUNNING, SessionStatus.CANCELLED, True), (
        f"the pump reports infusing {first.infusion_id} (timed out) but the record shows first={first.status}, "
        f"second={second.status}, confirmed_late alarm={late}"
    )


def test_progress_naming_the_timed_out_order_is_not_shown_as_the_pending_orders(django_capture_on_commit_callbacks):
    first, second = reordered_after_a_time_out("OLDER_SHOWN", drug="Heparin")
    ingest([message("OLDER_SHOWN", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0,
                                                "infusionId": first.infusion_id})],
           django_capture_on_commit_callbacks)  # fmt: skip
    shown = [infusion_id for infusion_id, _ in shown_progress("OLDER_SHOWN")]
    samples = ProgressSample.objects.filter(session=second, delivered_volume_ml=3.0).count()
    assert second.infusion_id not in shown and samples == 0, (
        f"progress the pump reported for {first.infusion_id} is shown as the Heparin order's ({second.infusion_id}): "
        f"snapshot progress infusionIds={shown}, samples in its history={samples}"
    )
    assert shown == [first.infusion_id], f"the progress is not shown as the order the pump runs: {shown}"


def test_an_unordered_infusion_is_not_shown_as_a_new_pending_orders_progress(django_capture_on_commit_callbacks):
    """The original firmware infusing without an order ignores a START (busy) and says nothing."""
    make_device("OLDER_BUSY")
    legacy = {"status": "running", "flowRate": 5.0, "deliveredVolumeMl": 12.0, "volumeRemainingMl": 38.0}
    ingest([message("OLDER_BUSY", "progress", legacy)], django_capture_on_commit_callbacks)
    order = infusion_start(device_id="OLDER_BUSY", order=make_order(drug="Heparin"))  # the busy pump ignores it
    ingest([message("OLDER_BUSY", "progress", {**legacy, "deliveredVolumeMl": 12.1}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    shown = shown_progress("OLDER_BUSY")
    samples = ProgressSample.objects.filter(session=order, delivered_volume_ml__isnull=False).count()
    assert (order.infusion_id, 5.0) not in shown and samples == 0, (
        f"the pump's own infusion (5 mL/min, no order) is shown as the pending Heparin order's progress {shown} "
        f"and written into its history ({samples} samples), though the pump never received its START"
    )
    unordered = Alarm.objects.filter(device=order.device, type="infusing_without_order", state=AlarmState.ACTIVE)
    assert unordered.exists(), "the pump still infuses without an order: its alarm must stay"


def test_a_late_confirmation_of_the_timed_out_order_while_a_newer_one_runs_is_not_lost(
    django_capture_on_commit_callbacks,
):
    """`infusion_running_late` with the newer order RUNNING: nothing moves, a high alarm on the old order."""
    first, second = reordered_after_a_time_out("OLDER_CONF")
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id="OLDER_CONF"), infusion_id=second.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip
    ingest([message("OLDER_CONF", "infusion", {"confirmed": True, "infusionId": first.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    dead = list(DeadLetter.objects.values_list("reason", "detail"))
    alarms = list(Alarm.objects.filter(session=first, state=AlarmState.ACTIVE).values_list("type", flat=True))
    assert not dead and alarms, (
        f"the pump confirmed the timed-out order {first.infusion_id} while {second.infusion_id} runs: the message was "
        f"dead-lettered {dead[:1]} and no alarm tells anyone (active alarms about it: {alarms})"
    )
