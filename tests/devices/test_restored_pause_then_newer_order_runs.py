"""Review 24, finding 1: a rebooted pump holding its interrupted order A paused (restored `paused`, review 22
finding 5) cancelled the newer order B the nurse had placed meanwhile, although B's START already reached the pump;
when the pump then ran B (the nurse at the pump confirms the order on its screen), every report of B was refused by
the database (IntegrityError: one active session per pump, A being paused) and dead-lettered. The screen kept
"A: Paused", "B: cancelled" while the pump infused B, its progress never shown; A being paused, no silence alarm ever
came: the only alarms were a generic `unreadable_report` ("check the pump") and the `confirmed_late` about A.

`confirmations.infusion_running_late` looked only for a NEWER active order before it let an ended one run again; an
OLDER one on the pump (A, restored paused or running) was not considered, so B's late confirmation tried to make it a
second active session. Now: a paused status naming A while B's START has reached the pump restores nothing and
cancels nothing (the high `confirmed_late` on A says "check which order the pump is infusing"), and an order the
pump runs late ends an older one still on the pump (interrupted), its `confirmed_late` naming both."""

from collections.abc import Callable

import pytest

from devices.models import Alarm, DeadLetter, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

PARAMETERS = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True,
              "bolusVolumeMl": 5}  # fmt: skip

Status = Callable[[dict, float], None]


def old_order_interrupted_by_a_reboot(device_id: str, capture, *, paused: bool) -> tuple[InfusionSession, Status]:
    """Order A (Heparin) confirmed and running on boot b1 (then paused, if `paused`); the pump reboots (b2): A is
    interrupted. Returns A and the pump's status reports, applied as the bridge applies them."""
    make_device(device_id, has_presence=True)

    def status(body: dict, at_s: float) -> None:
        ingest([report(device_id, "status", body, at_s)], capture)

    a = confirmed_order(device_id, drug="Heparin")
    status({"status": "running", "infusionId": a.infusion_id, "bootId": "b1", "seq": 1, "uptime": 600_000}, 0)
    if paused:
        status({"status": "paused", "infusionId": a.infusion_id, "bootId": "b1", "seq": 2, "uptime": 601_000}, 1)
    status({"status": "online", "bootId": "b2", "seq": 1, "uptime": 1_000}, 2)  # rebooted: A interrupted
    return a, status


def newer_order_received(device_id: str, status: Status) -> InfusionSession:
    """The nurse orders B (Insulin) anew; the pump reports it received B's START."""
    b = infusion_start(device_id=device_id, order=make_order(drug="Insulin"))
    status({"status": "received_start_command", "infusionId": b.infusion_id, "bootId": "b2", "seq": 2,
            "uptime": 2_000}, 3)  # fmt: skip
    return b


def newer_order_confirmed_and_running(device_id: str, b: InfusionSession, capture) -> None:
    """The nurse at the pump confirms B on its screen: the pump answers (its parameters read back) and runs it."""
    ingest([report(device_id, "infusion", {"infusionId": b.infusion_id, "confirmed": True, "bootId": "b2",
                                           "seq": 4, "parameters": PARAMETERS}, 5),
            report(device_id, "progress", {"status": "running", "infusionId": b.infusion_id, "bootId": "b2",
                                           "seq": 5, "deliveredVolumeMl": 1.0, "flowRate": 2.0}, 6)],
           capture)  # fmt: skip


def test_the_newer_order_the_pump_runs_after_restoring_the_old_one_paused_is_shown_running(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    a, status = old_order_interrupted_by_a_reboot("RESTORED_OLD", capture, paused=True)
    assert InfusionSession.objects.get(pk=a.pk).status == SessionStatus.INTERRUPTED, "precondition"
    b = newer_order_received("RESTORED_OLD", status)
    status({"status": "paused", "infusionId": a.infusion_id, "bootId": "b2", "seq": 3, "uptime": 3_000}, 4)
    active = dict(Alarm.objects.filter(device__device_id="RESTORED_OLD", state=AlarmState.ACTIVE)
                  .values_list("type", "session__infusion_id"))  # fmt: skip
    assert InfusionSession.objects.get(pk=b.pk).status == SessionStatus.PENDING, (
        "the pump received B's START: holding the old A paused is no evidence against B, which it may yet run"
    )
    assert active.get("confirmed_late") == a.infusion_id and "infusing_without_order" not in active, (
        f"the pump reports old A paused while B awaits confirmation: the nurse must be told to check which order the "
        f"pump holds (confirmed_late on A), never 'an infusion the server did not order'; active: {active}"
    )
    newer_order_confirmed_and_running("RESTORED_OLD", b, capture)
    a, b = InfusionSession.objects.get(pk=a.pk), InfusionSession.objects.get(pk=b.pk)
    refused = list(DeadLetter.objects.filter(source="RESTORED_OLD").values_list("topic", "reason"))
    assert b.status == SessionStatus.RUNNING, (
        f"the pump confirmed and runs B ({b.drug}), yet the screen shows A ({a.drug}) {a.status} and B {b.status} "
        f"'{b.status_reason}'; B's reports were refused by the database: {refused}"
    )
    assert a.status == SessionStatus.INTERRUPTED and not refused, (
        f"A {a.status}, refused {refused}: never two orders on the pump, never a report refused by the database"
    )


def test_the_newer_order_the_pump_runs_after_resuming_the_old_one_ends_the_old_one(django_capture_on_commit_callbacks):
    """Review 24, finding 1 (its pre-existing relative): A restored RUNNING after the reboot cancels B; the pump
    then confirms and runs B. B's evidence is the later word: B runs, A is ended (interrupted), and the high
    `confirmed_late` names both; no report of B is refused."""
    capture = django_capture_on_commit_callbacks
    a, status = old_order_interrupted_by_a_reboot("RESUMED_OLD", capture, paused=False)
    b = newer_order_received("RESUMED_OLD", status)
    status({"status": "running", "infusionId": a.infusion_id, "bootId": "b2", "seq": 3, "uptime": 3_000}, 4)
    assert InfusionSession.objects.get(pk=a.pk).status == SessionStatus.RUNNING, "precondition: A resumed"
    newer_order_confirmed_and_running("RESUMED_OLD", b, capture)
    a, b = InfusionSession.objects.get(pk=a.pk), InfusionSession.objects.get(pk=b.pk)
    refused = list(DeadLetter.objects.filter(source="RESUMED_OLD").values_list("topic", "reason"))
    late = Alarm.objects.filter(session=b, type="confirmed_late", state=AlarmState.ACTIVE).first()
    assert (b.status, a.status, refused) == (SessionStatus.RUNNING, SessionStatus.INTERRUPTED, []), (
        f"the pump runs B: B {b.status}, A {a.status} '{a.status_reason}', refused {refused}"
    )
    assert late is not None and a.infusion_id in late.message, (
        f"B ran after it was cancelled and A was ended for it: the high confirmed_late must say so: {late}"
    )
