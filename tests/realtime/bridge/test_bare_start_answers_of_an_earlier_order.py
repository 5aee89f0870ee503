"""The original firmware's answers to a START name no infusion (`received_start_command`, `rejected`): such an answer is
about the order waiting only if the pump can have had that order's START (review 33, finding 1). A receipt or a Reject
of a cancelled order, held up in the bridge (a stall, a backlog) until the nurse placed a corrected order, was applied
to the corrected order though its START had never left the server: it read "Delivered to the pump", with a false high
`parameter_mismatch` against the cancelled order's figures, or "rejected at the pump", its START `done` unsent.

Reports go through the bridge's real batch ingest; the START's publication is what the outbox records (`published_at`,
`state` sent), set by hand here: no broker in these tests."""

import pytest

from devices.models import Alarm, Command, DeviceEvent, InfusionSession
from devices.services.named import REPORT_FOR_OTHER_INFUSION
from devices.services.requests import infusion_cancel
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import ingest, report, start_sent

pytestmark = pytest.mark.django_db
DEVICE = "BARE_ANSWERS"
FIRST = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 30, "planned_time_min": 15, "bolus_enabled": False}
CORRECTED = {"flow_rate_ml_min": 1.0, "planned_volume_ml": 30, "planned_time_min": 30, "bolus_enabled": False}
FIRST_ON_SCREEN = {"rate": 2.0, "volume": 30, "time": 15, "bolusEnabled": False, "bolusVolume": 0}
CORRECTED_ON_SCREEN = {"rate": 1.0, "volume": 30, "time": 30, "bolusEnabled": False, "bolusVolume": 0}


def legacy_status(body: dict, at_s: float = 0.0):
    """The original firmware's status: `device/{id}/status` (singular), no infusionId, uptime ms."""
    return report(DEVICE, "status", {"deviceId": DEVICE, **body}, at_s, topic=f"device/{DEVICE}/status")


def start_of(session: InfusionSession) -> Command:
    return Command.objects.get(session=session, kind=CommandKind.START_INFUSION)


def corrected_after_cancel(capture, *, first_received: bool) -> tuple[InfusionSession, InfusionSession]:
    """A legacy pump was sent order X (its receipt applied if `first_received`); the nurse cancelled X and placed a
    corrected order Y, whose START is still on the server."""
    make_device(DEVICE, has_presence=False)
    nurse = make_user("bare-nurse")
    first = infusion_start(device_id=DEVICE, order=make_order(**FIRST), user=nurse)
    start_sent(first, ago_s=30)
    ingest([legacy_status({"status": "online", "timestamp": 4215}, -29)], capture)
    if first_received:
        ingest([legacy_status({"status": "received_start_command", "timestamp": 52010,
                               "currentInfusion": FIRST_ON_SCREEN}, -28)], capture)  # fmt: skip
    infusion_cancel(infusion_id=first.infusion_id, user=nurse)
    second = infusion_start(device_id=DEVICE, order=make_order(drug="Heparin", **CORRECTED), user=nurse)
    return InfusionSession.objects.get(pk=first.pk), second


def audited(session: InfusionSession, status: str) -> DeviceEvent | None:
    events = DeviceEvent.objects.filter(device__device_id=DEVICE, kind=REPORT_FOR_OTHER_INFUSION)
    return next((event for event in events if event.payload.get("report") == status
                 and event.payload.get("current") == session.infusion_id), None)  # fmt: skip


def test_a_late_bare_receipt_never_marks_an_unsent_order_delivered(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    first, second = corrected_after_cancel(capture, first_received=False)
    ingest([legacy_status({"status": "received_start_command", "timestamp": 52010,
                           "currentInfusion": FIRST_ON_SCREEN})], capture)  # fmt: skip
    second.refresh_from_db()
    start = start_of(second)
    mismatch = Alarm.objects.filter(session=second, type="parameter_mismatch").first()
    assert start.published_at is None and start.handed_at is None, "the corrected order's START is still on the server"
    assert second.delivered_at is None and mismatch is None, (
        f"the corrected order, never sent, reads delivered at {second.delivered_at}; alarm: "
        f"{mismatch and mismatch.message!r}"
    )
    assert second.received_flow_rate_ml_min is None, "the cancelled order's figures were kept as the corrected one's"
    assert audited(second, "received_start_command") is not None, "the receipt applied to nothing left no record"


def test_a_late_bare_reject_never_rejects_an_unsent_order(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    first, second = corrected_after_cancel(capture, first_received=True)
    ingest([legacy_status({"status": "rejected", "timestamp": 54000})], capture)
    second.refresh_from_db()
    start = start_of(second)
    assert second.status == SessionStatus.PENDING and start.state == CommandState.QUEUED, (
        f"the corrected order, never sent, is {second.status} ({second.status_reason!r}); its START, never "
        f"published, is {start.state}"
    )
    event = audited(second, "rejected")
    assert event is not None and "had not left the server" in event.payload["why"], (
        f"the rejection applied to nothing was not recorded with why: {event and event.payload}"
    )


def test_a_late_bare_reject_after_the_newer_start_went_out_waits_for_its_receipt(django_capture_on_commit_callbacks):
    """The earlier order's Reject arrives after the corrected order's START went out: it may be either's (the
    firmware names neither). Not applied (the corrected order still waits on the pump's screen, where it can be
    accepted): the rejection of the order waiting is the one after its own receipt."""
    capture = django_capture_on_commit_callbacks
    first, second = corrected_after_cancel(capture, first_received=True)
    start_sent(second)
    ingest([legacy_status({"status": "rejected", "timestamp": 54000})], capture)
    second.refresh_from_db()
    assert second.status == SessionStatus.PENDING, (
        f"a Reject sent before the pump reported receiving the corrected order rejected it ({second.status_reason!r})"
    )
    assert "receiving its START" in audited(second, "rejected").payload["why"]


def test_a_late_bare_receipt_of_the_earlier_orders_figures_is_not_the_newer_orders(django_capture_on_commit_callbacks):
    """The cancelled order's receipt arrives after the corrected order's START went out, telling the cancelled
    order's figures: it is that order's, late. The corrected order's own receipt, after it, is applied."""
    capture = django_capture_on_commit_callbacks
    first, second = corrected_after_cancel(capture, first_received=False)
    start_sent(second)
    ingest([legacy_status({"status": "received_start_command", "timestamp": 52010,
                           "currentInfusion": FIRST_ON_SCREEN})], capture)  # fmt: skip
    second.refresh_from_db()
    assert second.delivered_at is None, "the cancelled order's late receipt marked the corrected order delivered"
    assert not Alarm.objects.filter(session=second, type="parameter_mismatch").exists(), (
        "the cancelled order's figures raised a mismatch on the corrected order"
    )
    assert first.infusion_id in audited(second, "received_start_command").payload["why"]
    ingest([legacy_status({"status": "received_start_command", "timestamp": 70010,
                           "currentInfusion": CORRECTED_ON_SCREEN}, 0.5)], capture)  # fmt: skip
    second.refresh_from_db()
    assert second.delivered_at is not None and start_of(second).state == CommandState.DELIVERED, (
        "the corrected order's own receipt was not applied"
    )
    assert not Alarm.objects.filter(session=second, type="parameter_mismatch").exists()


def test_the_newer_orders_own_receipt_and_reject_apply(django_capture_on_commit_callbacks):
    """Once its START went out, the pump's receipt of the corrected order, then its Reject, are the corrected
    order's: delivered, then rejected at the pump, its START done."""
    capture = django_capture_on_commit_callbacks
    first, second = corrected_after_cancel(capture, first_received=True)
    start_sent(second)
    ingest([legacy_status({"status": "received_start_command", "timestamp": 70010,
                           "currentInfusion": CORRECTED_ON_SCREEN})], capture)  # fmt: skip
    ingest([legacy_status({"status": "rejected", "timestamp": 75000}, 0.5)], capture)
    second.refresh_from_db()
    assert second.delivered_at is not None, "the corrected order's receipt was not applied"
    assert (second.status, second.status_reason) == (SessionStatus.REJECTED, "rejected at the pump"), (
        f"the pump's Reject of the corrected order left it {second.status} ({second.status_reason!r})"
    )
    assert start_of(second).state == CommandState.DONE
    assert not Alarm.objects.filter(session=second, type="parameter_mismatch").exists()


def test_a_bare_receipt_received_before_the_start_was_published_is_not_its(django_capture_on_commit_callbacks):
    """A report the bridge received before it published the START (applied after: a batch held up) cannot be about
    that START, whatever the order of their commits."""
    capture = django_capture_on_commit_callbacks
    first, second = corrected_after_cancel(capture, first_received=False)
    start_sent(second, ago_s=1)
    ingest([legacy_status({"status": "received_start_command", "timestamp": 52010,
                           "currentInfusion": CORRECTED_ON_SCREEN}, -2)], capture)  # fmt: skip
    second.refresh_from_db()
    assert second.delivered_at is None, "a receipt received before the START was published marked it delivered"


def retried(capture, *, times: int = 1, first_received: bool = False) -> tuple[list[InfusionSession], InfusionSession]:
    """A legacy pump was sent order X (its receipt heard if `first_received`); X was cancelled (or timed out) and the
    nurse pressed Retry `times` times (the waiting window's Retry: the same order to the same pump), each START gone
    out. The orders before the last (their answers held in the bridge: a backlog), and the last, waiting."""
    make_device(DEVICE, has_presence=False)
    nurse = make_user("bare-nurse")
    ended = []
    for attempt in range(times):
        order = infusion_start(device_id=DEVICE, order=make_order(**FIRST), user=nurse)
        start_sent(order, ago_s=30 - attempt)
        if attempt == 0:
            ingest([legacy_status({"status": "online", "timestamp": 4215}, -29)], capture)
        if first_received and attempt == 0:
            ingest([legacy_status({"status": "received_start_command", "timestamp": 52010,
                                   "currentInfusion": FIRST_ON_SCREEN}, -28)], capture)  # fmt: skip
        infusion_cancel(infusion_id=order.infusion_id, user=nurse)
        ended.append(order)
    last = infusion_start(device_id=DEVICE, order=make_order(**FIRST), user=nurse)
    start_sent(last)
    return ended, last


def receipt_of_first_figures(capture, uptime_ms: int, at_s: float = 0.0) -> None:
    ingest([legacy_status({"status": "received_start_command", "timestamp": uptime_ms,
                           "currentInfusion": FIRST_ON_SCREEN}, at_s)], capture)  # fmt: skip


def test_the_first_orders_late_receipt_and_reject_do_not_reject_the_retried_order(django_capture_on_commit_callbacks):
    """Review 36, finding 1: the first order's receipt and Reject (a colleague tapped Reject on its screen), held in the
    bridge until Retry's START went out, tell the figures of both orders. They were taken for the retried order's: it
    read "rejected: someone at the pump pressed Reject. Nothing is running." while its START reached the pump's
    confirm screen, where it could still be accepted. The receipt may be the first order's (its own was never heard):
    not this order's, so the Reject after it waits. The retried order's own receipt and Reject, after them, apply."""
    capture = django_capture_on_commit_callbacks
    (first,), order = retried(capture)
    receipt_of_first_figures(capture, 52010)  # the first order's, late
    ingest([legacy_status({"status": "rejected", "timestamp": 54000}, 0.1)], capture)  # the first order's, late
    order.refresh_from_db()
    assert order.status == SessionStatus.PENDING and order.delivered_at is None, (
        f"the retried order, its START on its way to the pump's confirm screen, is {order.status} "
        f"({order.status_reason!r}), delivered at {order.delivered_at}, by the first order's late receipt and Reject "
        "(figures alike: either order's)"
    )
    receipt = audited(order, "received_start_command")
    assert receipt.payload["earlier"] == first.infusion_id and "may be the earlier order" in receipt.payload["why"]
    reject = audited(order, "rejected").payload
    assert "receiving its START" in reject["why"] and reject["mayBeCurrent"] and receipt.payload["mayBeCurrent"]
    assert order.answer_in_doubt == "rejected", "the order waiting keeps no word of a Reject that may be its own"
    receipt_of_first_figures(capture, 70010, 0.5)  # the retried order's own, after the first order's
    ingest([legacy_status({"status": "rejected", "timestamp": 75000}, 0.6)], capture)
    order.refresh_from_db()
    assert order.delivered_at is not None and order.status == SessionStatus.REJECTED, (
        f"the retried order's own receipt and Reject, after the first order's, left it {order.status}"
    )
    assert order.answer_in_doubt == "", "its own receipt applied, the answers before it were the first order's"


def test_receipts_owed_by_two_retried_orders_are_theirs_before_the_last_orders(django_capture_on_commit_callbacks):
    """Two orders of the same figures went out and ended unanswered before the order waiting: the first two receipts
    after its START went out may be theirs (the pump answers STARTs in order; a lost one leaves the order waiting to
    its time-out); the third is the order's own."""
    capture = django_capture_on_commit_callbacks
    ended, order = retried(capture, times=2)
    receipt_of_first_figures(capture, 52010)
    receipt_of_first_figures(capture, 60010, 0.1)
    order.refresh_from_db()
    assert order.delivered_at is None, "a receipt the orders before may still owe marked the order waiting delivered"
    events = DeviceEvent.objects.filter(device__device_id=DEVICE, kind=REPORT_FOR_OTHER_INFUSION).order_by("pk")
    assert [event.payload["earlier"] for event in events] == [ended[0].infusion_id, ended[1].infusion_id]
    receipt_of_first_figures(capture, 70010, 0.2)
    order.refresh_from_db()
    assert order.delivered_at is not None, "the order's own receipt, after both owed, was not applied"


def test_the_retried_orders_receipt_applies_once_the_first_orders_was_heard(django_capture_on_commit_callbacks):
    """The first order's receipt was heard before it ended (the pump showed it; nobody accepted it in time): a receipt
    after the retried order's START went out is the retried order's, and the Reject after it rejects it."""
    capture = django_capture_on_commit_callbacks
    _, order = retried(capture, first_received=True)
    receipt_of_first_figures(capture, 70010)
    ingest([legacy_status({"status": "rejected", "timestamp": 75000}, 0.1)], capture)
    order.refresh_from_db()
    assert order.delivered_at is not None, "the retried order's own receipt was taken for the first order's"
    assert (order.status, order.status_reason) == (SessionStatus.REJECTED, "rejected at the pump")


def test_a_receipt_telling_no_figures_may_be_the_earlier_orders(django_capture_on_commit_callbacks):
    """A receipt telling no figures fits any order: while an earlier order may still owe its receipt, it is not taken
    for the order waiting's."""
    capture = django_capture_on_commit_callbacks
    (first,), order = retried(capture)
    ingest([legacy_status({"status": "received_start_command", "timestamp": 52010})], capture)
    order.refresh_from_db()
    assert order.delivered_at is None, "a receipt telling no figures, maybe the first order's, marked it delivered"
    assert audited(order, "received_start_command").payload["earlier"] == first.infusion_id


def test_the_first_orders_late_started_never_runs_the_retried_order(django_capture_on_commit_callbacks):
    """The first order accepted at the pump, its confirmation (named) lost, its receipt and `started` (naming nothing)
    held in the bridge until Retry's START went out: the retried order is not shown running on them (a `started` naming
    nothing is evidence only for an order whose receipt was heard)."""
    capture = django_capture_on_commit_callbacks
    _, order = retried(capture)
    receipt_of_first_figures(capture, 52010)
    ingest([legacy_status({"status": "started", "timestamp": 64510}, 0.1)], capture)
    order.refresh_from_db()
    assert order.status == SessionStatus.PENDING, (
        f"the retried order, never accepted, is {order.status} ({order.status_reason!r}) on the first order's start"
    )
