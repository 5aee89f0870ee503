"""An order whose record a person ended, that the pump then runs after all, is never silent (review 3, "ended record
runs silently").

On the old code "End record…" was offered for a pending order (the monitor's only way to drop one) and sent nothing
to the pump: its confirm screen stayed. Accepted there later, the order ran again through the branch meant for a pump
resuming after a restart (`infusion_interrupted` cleared, no other alarm), and a newer order the nurse had placed
meanwhile was cancelled without a word. Now End record refuses a pending order (Cancel clears the pump's screen), and
an order whose record was ended that runs again raises a high `confirmed_late` naming it (and the order it cost).
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, Command, InfusionSession
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.readback import UNVERIFIED_KEY
from devices.services.requests import infusion_cancel, infusion_record_end, infusion_unverified_raise
from devices.services.restarts import pump_restarted
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmState, CommandKind, ReadBack, SessionStatus
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip  # `make_order`'s parameters, as the pump reads them back


def confirm(device_id: str, session: InfusionSession) -> None:
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip


def high_alarms(device_id: str) -> dict[str, str]:
    active = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE, priority=AlarmPriority.HIGH)
    return dict(active.values_list("type", "message"))


def running_again(device_id: str, session: InfusionSession, capture) -> None:
    """The pump reports the order running (its id named), as after someone at the pump resumed it."""
    ingest([report(device_id, "status", {"status": "running", "infusionId": session.infusion_id}, 5)], capture)


def test_ending_the_record_of_a_pending_order_is_refused_for_cancel():
    make_device("REC_0")
    nurse = make_user("nurse")
    order = infusion_start(device_id="REC_0", order=make_order(drug="Heparin"), user=nurse)
    with pytest.raises(PumpStreamError) as refused:
        infusion_record_end(infusion_id=order.infusion_id, user=nurse, reason="pump seems not to have it")
    assert refused.value.code == "session_pending", "End record of a pending order leaves its confirm screen on"
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.PENDING
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)  # what the monitor offers instead
    assert Command.objects.filter(session=order, kind=CommandKind.STOP_INFUSION).exists(), "Cancel clears the screen"


def test_a_cancelled_order_the_pump_then_accepts_runs_with_confirmed_late():
    """The reviewer's first scenario, through Cancel (End record of a pending order is refused)."""
    make_device("REC_1")
    nurse = make_user("nurse")
    order = infusion_start(device_id="REC_1", order=make_order(drug="Heparin"), user=nurse)
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)
    confirm("REC_1", order)  # someone at the pump accepts the order still on its screen
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.RUNNING, "evidence wins: it runs"
    assert "confirmed_late" in high_alarms("REC_1"), f"it runs with no alarm: {high_alarms('REC_1')}"


def test_an_order_whose_record_was_ended_runs_again_with_confirmed_late(django_capture_on_commit_callbacks):
    make_device("REC_2")
    nurse = make_user("nurse")
    order = confirmed_order("REC_2", drug="Heparin")
    infusion_record_end(infusion_id=order.infusion_id, user=nurse, reason="pump seems not to have it")
    running_again("REC_2", order, django_capture_on_commit_callbacks)
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.RUNNING, "precondition: evidence wins"
    alarms = high_alarms("REC_2")
    assert "confirmed_late" in alarms, (
        f"an order whose record a nurse ended now runs on the pump, and no alarm says so (high alarms: {alarms})"
    )
    assert order.infusion_id in alarms["confirmed_late"] and "record was ended by nurse" in alarms["confirmed_late"]


def test_the_order_placed_after_ending_a_record_is_not_cancelled_in_silence(django_capture_on_commit_callbacks):
    make_device("REC_3")
    nurse = make_user("nurse")
    first = confirmed_order("REC_3", drug="Heparin")
    infusion_record_end(infusion_id=first.infusion_id, user=nurse, reason="wrong bag, reorder")
    second = infusion_start(device_id="REC_3", order=make_order(drug="Heparin 2"), user=nurse)
    running_again("REC_3", first, django_capture_on_commit_callbacks)  # the old order runs on the pump
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (SessionStatus.RUNNING, SessionStatus.CANCELLED), "precondition"
    message = high_alarms("REC_3").get("confirmed_late", "")
    assert first.infusion_id in message and second.infusion_id in message, (
        f"the order the nurse ended runs instead of the one she placed (cancelled), and the alarm does not say so: "
        f"{high_alarms('REC_3')}"
    )


def test_an_order_resumed_after_a_restart_that_cost_a_newer_order_says_so(django_capture_on_commit_callbacks):
    make_device("REC_4")
    first = confirmed_order("REC_4", drug="Heparin")
    with transaction.atomic():
        pump_restarted(device=device_lock(device_id="REC_4"), why="new bootId", now=first.created_at)
    assert InfusionSession.objects.get(pk=first.pk).status == SessionStatus.INTERRUPTED, "precondition"
    second = infusion_start(device_id="REC_4", order=make_order(drug="Heparin 2"))
    running_again("REC_4", first, django_capture_on_commit_callbacks)
    alarms = high_alarms("REC_4")
    assert "infusion_interrupted" not in alarms, "the pump reports it running again: the interruption clears"
    assert second.infusion_id in alarms.get("confirmed_late", ""), f"the newer order was cancelled in silence: {alarms}"


def test_an_order_resumed_after_a_restart_alone_raises_nothing(django_capture_on_commit_callbacks):
    make_device("REC_5")
    first = confirmed_order("REC_5", drug="Heparin")
    with transaction.atomic():
        pump_restarted(device=device_lock(device_id="REC_5"), why="new bootId", now=first.created_at)
    running_again("REC_5", first, django_capture_on_commit_callbacks)
    assert InfusionSession.objects.get(pk=first.pk).status == SessionStatus.RUNNING
    assert high_alarms("REC_5") == {}, "a restart's interruption the pump then resumes clears, as the contract says"


def test_an_order_confirmed_matching_whose_record_was_ended_stays_verified(django_capture_on_commit_callbacks):
    """Review 30: a record ended while the pump ran the order it had confirmed, matching; the pump went on running it.
    `confirmed_late` says so; its confirmation still holds (no restart since): no `parameters_unverified` 5 s later
    saying the pump "did not report the parameters it runs"."""
    make_device("REC_6")
    order = confirmed_order("REC_6", parameters=READ_BACK)
    assert order.read_back == ReadBack.MATCH, "precondition: confirmed with the order's parameters"
    infusion_record_end(infusion_id=order.infusion_id, user=make_user("admin", is_staff=True), reason="in the admin")
    running_again("REC_6", order, django_capture_on_commit_callbacks)
    order.refresh_from_db()
    grace = timedelta(seconds=settings.PUMPSTREAM["EVIDENCE_CONFIRMATION_GRACE_S"] + 1)
    raised = infusion_unverified_raise(session_pk=order.pk, now=timezone.now() + grace)
    unverified = Alarm.objects.filter(session=order, type=UNVERIFIED_KEY, state=AlarmState.ACTIVE).first()
    assert (order.read_back, order.unconfirmed_since, raised, unverified) == (ReadBack.MATCH, None, False, None), (
        f"the pump confirmed the order's parameters and never restarted, yet after its record was ended it reads "
        f"{order.read_back!r} (waiting for a confirmation since {order.unconfirmed_since}) and says: "
        f"{unverified.message if unverified else None!r}"
    )
    assert "confirmed_late" in high_alarms("REC_6"), "that its record was ended while it ran is still said"


def test_an_order_whose_record_was_ended_run_again_after_a_restart_is_checked_again(django_capture_on_commit_callbacks):
    """A restart told after the record's end voids what the confirmation verified (review 14), as after a restart's
    own interruption: unverified until the pump confirms again."""
    make_device("REC_7")
    order = confirmed_order("REC_7", parameters=READ_BACK)
    infusion_record_end(infusion_id=order.infusion_id, user=make_user("admin", is_staff=True), reason="in the admin")
    with transaction.atomic():
        pump_restarted(device=device_lock(device_id="REC_7"), why="new bootId", now=timezone.now())
    running_again("REC_7", order, django_capture_on_commit_callbacks)
    order.refresh_from_db()
    assert order.read_back == ReadBack.UNVERIFIED and order.unconfirmed_since is not None, (
        f"the pump restarted after the record's end and runs the order again: its old confirmation still reads "
        f"{order.read_back!r}"
    )
