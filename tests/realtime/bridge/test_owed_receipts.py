"""The original firmware's receipt an earlier order "owes" (`bare_answers._orders_since_last_heard`) is owed only
while nothing came from the pump since it had that order's START (review 37, findings 1-3 and 7).

Before: a receipt lost once (QoS 0), or a START that never reached a pump off or rebooting, left an order owing a
receipt for ever: each later order of the same figures (the waiting window's Retry, a standard regimen) had its own
receipt taken for the order before it, its own Reject held back to its time-out, and a retry accepted at the pump after
a reboot was never shown running. Nothing ended the debt but an order ending otherwise than cancelled or timed out:
not the pump's reboot, not its answer to the STOP that cleared the earlier order's screen (sent after any answer to
that START). Only answers held up together (received after the order waiting's START went out: review 36, finding 1,
`test_bare_start_answers_of_an_earlier_order.py`) keep an earlier order owing.
"""

import pytest

from devices.models import InfusionSession
from devices.services.requests import infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import ingest, report, start_sent

pytestmark = pytest.mark.django_db
DEVICE = "OWED_RECEIPTS"
FIGURES = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 30, "planned_time_min": 15, "bolus_enabled": False}
ON_SCREEN = {"rate": 2.0, "volume": 30, "time": 15, "bolusEnabled": False, "bolusVolume": 0}


def legacy(capture, body: dict, at_s: float = 0.0) -> None:
    ingest([report(DEVICE, "status", {"deviceId": DEVICE, **body}, at_s, topic=f"device/{DEVICE}/status")], capture)


def order_sent(nurse, ago_s: float) -> InfusionSession:
    order = infusion_start(device_id=DEVICE, order=make_order(**FIGURES), user=nurse)
    start_sent(order, ago_s=ago_s)
    return order


def test_a_pump_rebooted_after_an_unanswered_order_has_its_next_reject_held_back(django_capture_on_commit_callbacks):
    """Order A went out while the pump was off (never received); A timed out. The pump boots (uptime 4 s): no answer
    to A can ever come. Retry B: the pump's receipt and Reject are B's, yet B is left pending to its time-out."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    nurse = make_user("owed-nurse")
    first = order_sent(nurse, ago_s=120)
    infusion_time_out(infusion_id=first.infusion_id)
    legacy(capture, {"status": "online", "timestamp": 4215}, -5)  # booted 4 s ago: A's START is gone
    retry = order_sent(nurse, ago_s=2)
    legacy(capture, {"status": "received_start_command", "timestamp": 9010, "currentInfusion": ON_SCREEN})
    legacy(capture, {"status": "rejected", "timestamp": 12000}, 0.1)
    retry.refresh_from_db()
    assert retry.status == SessionStatus.REJECTED, (
        f"the pump, rebooted since A, rejected B; B is {retry.status} (answer_in_doubt={retry.answer_in_doubt!r}, "
        f"delivered_at={retry.delivered_at})"
    )


def test_one_lost_receipt_holds_back_every_later_retry(django_capture_on_commit_callbacks):
    """A's receipt lost (QoS 0); A times out and the pump answers the STOP that clears its screen (idle). Retry B:
    its receipt is taken for A's, its Reject held; B times out, the pump answers B's STOP. Retry C: every answer to B's
    START came before that idle, yet C's receipt is taken for B's and C's Reject held: the debt moves on for ever."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    nurse = make_user("owed-nurse")
    legacy(capture, {"status": "online", "timestamp": 4215}, -200)
    orders = []
    for index in range(3):
        order = order_sent(nurse, ago_s=150 - 60 * index)
        if index > 0:  # B's, C's own receipt and Reject (A's receipt was lost)
            legacy(capture, {"status": "received_start_command", "timestamp": 60000 * index + 10,
                             "currentInfusion": ON_SCREEN}, -149 + 60 * index)  # fmt: skip
            legacy(capture, {"status": "rejected", "timestamp": 60000 * index + 3000}, -148 + 60 * index)
        order.refresh_from_db()
        orders.append(order)
        if index > 0:
            assert order.status == SessionStatus.REJECTED, (
                f"order {index}, rejected at the pump after its own receipt, is {order.status} "
                f"(answer_in_doubt={order.answer_in_doubt!r}): its receipt was taken for an earlier order's"
            )
        if index < 2 and order.status == SessionStatus.PENDING:
            infusion_time_out(infusion_id=order.infusion_id)
            legacy(capture, {"status": "idle", "timestamp": 60000 * index + 50000}, -100 + 60 * index)
    last = orders[-1]
    last.refresh_from_db()
    assert last.status == SessionStatus.REJECTED, (
        f"C, rejected at the pump after its own receipt, is {last.status} (answer_in_doubt={last.answer_in_doubt!r}): "
        "its receipt was taken for B's, which the pump had already given (taken for A's)"
    )


def test_a_retry_accepted_at_the_pump_is_never_shown_running_on_its_reports(django_capture_on_commit_callbacks):
    """The pump rebooted after A (never received). Retry B reaches its screen and is accepted; its confirmation is lost
    (QoS 0). The pump's `started` and a minute of running progress (the original firmware names no infusion in
    either) are the only word: B had its receipt taken for A's, so none of them is evidence for B, which stays
    "waiting" while the pump infuses it (and its time-out's STOP is then sent to a running pump)."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    nurse = make_user("owed-nurse")
    first = order_sent(nurse, ago_s=120)
    infusion_time_out(infusion_id=first.infusion_id)
    legacy(capture, {"status": "online", "timestamp": 4215}, -5)
    retry = order_sent(nurse, ago_s=2)
    legacy(capture, {"status": "received_start_command", "timestamp": 9010, "currentInfusion": ON_SCREEN})
    legacy(capture, {"status": "started", "timestamp": 15000}, 0.1)
    for second in range(1, 6):
        progress = {"deviceId": DEVICE, "timestamp": 15000 + 1000 * second, "status": "running", "flowRate": 2.0,
                    "deliveredVolumeMl": round(2.0 * second / 60, 2), "volumeRemainingMl": 30 - 2.0 * second / 60,
                    "elapsedTimeMin": round(second / 60, 2), "timeRemainingMin": 15 - second / 60,
                    "progressPercent": round(100 * 2.0 * second / 60 / 30, 2)}  # fmt: skip
        ingest([report(DEVICE, "progress", progress, 0.1 + second)], capture)
    retry.refresh_from_db()
    assert retry.status == SessionStatus.RUNNING, (
        f"B, accepted and infusing on the pump (started, running progress), is {retry.status} "
        f"(answer_in_doubt={retry.answer_in_doubt!r}, delivered_at={retry.delivered_at})"
    )


def test_a_reject_with_no_earlier_order_on_the_pump_is_this_orders(django_capture_on_commit_callbacks):
    """The pump's first order ever; its receipt lost (QoS 0); the nurse at the pump taps Reject. No earlier START ever
    went to this pump, so the Reject can be no earlier order's; yet it is held "in doubt" and the waiting window says
    "it may be of the earlier order, held up on its way" (an order that does not exist) until the time-out."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    legacy(capture, {"status": "online", "timestamp": 4215}, -60)
    order = order_sent(make_user("owed-nurse"), ago_s=5)
    legacy(capture, {"status": "rejected", "timestamp": 12000})
    order.refresh_from_db()
    assert order.status == SessionStatus.REJECTED, (
        f"the pump's only order was rejected at the pump; it is {order.status}, answer_in_doubt="
        f"{order.answer_in_doubt!r} (said as maybe 'of the earlier order': there is none)"
    )
