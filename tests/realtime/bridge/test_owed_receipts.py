"""The original firmware's receipt an earlier order "owes" (`bare_answers._orders_since_last_heard`) is owed only
while nothing came from the pump since it had that order's START (review 37, findings 1-3 and 7).

Before: a receipt lost once (QoS 0), or a START that never reached a pump off or rebooting, left an order owing a
receipt for ever: each later order of the same figures (the waiting window's Retry, a standard regimen) had its own
receipt taken for the order before it, its own Reject held back to its time-out, and a retry accepted at the pump after
a reboot was never shown running. Nothing ended the debt but an order ending otherwise than cancelled or timed out:
not the pump's reboot, not its answer to the STOP that cleared the earlier order's screen (sent after any answer to
that START). Only answers held up together (received after the order waiting's START went out: review 36, finding 1,
`test_bare_start_answers_of_an_earlier_order.py`) keep an earlier order owing.

"Once it had that START" counts from the latest moment the START can have left for the pump: its PUBACK, or the pump's
word that it had it, never from when paho first took it (review 39, finding 0): with the PUBACK late, a report or a
reboot in between may come before the START reached the pump, and the earlier order's late Reject rejected the retry.
"""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from devices.models import Command, InfusionSession
from devices.services.requests import infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
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


def start_handed(order: InfusionSession, *, ago_s: float, acknowledged_ago_s: float | None) -> datetime:
    """The order's START taken by paho `ago_s` seconds ago, its PUBACK recorded `acknowledged_ago_s` ago (None: not
    yet: still `queued`, as it stays until its deadline when the PUBACK never comes); returns when it was handed."""
    handed = timezone.now() - timedelta(seconds=ago_s)
    acknowledged = None if acknowledged_ago_s is None else timezone.now() - timedelta(seconds=acknowledged_ago_s)
    state = CommandState.QUEUED if acknowledged is None else CommandState.SENT
    Command.objects.filter(session=order, kind=CommandKind.START_INFUSION).update(
        state=state, handed_at=handed, published_at=handed, sent_at=acknowledged
    )
    return handed


def retry_rejected(capture, nurse, first: InfusionSession) -> InfusionSession:
    """A times out; retry B's START goes out; a bare Reject arrives, no receipt of either order heard."""
    infusion_time_out(infusion_id=first.infusion_id)
    retry = order_sent(nurse, ago_s=2)
    legacy(capture, {"status": "rejected", "timestamp": 420000})
    retry.refresh_from_db()
    return retry


@pytest.mark.parametrize("acknowledged_ago_s", [80, None], ids=["puback_late", "puback_never"])
def test_a_report_before_the_starts_puback_leaves_a_later_reject_in_doubt(
    django_capture_on_commit_callbacks, acknowledged_ago_s
):
    """A's START was taken by paho at -100 s; the broker acknowledged it only at -80 s, or not at all (the broker slow,
    paho's in-flight window full): the pump may have had it only then. Its `online` at -90 s may have been sent before,
    so it says nothing of A's answers: a colleague's Reject of A, tapped once A reached the screen and held up with A's
    STOP, may arrive after retry B's START went out. Applied to B, B read "rejected, nothing runs" while it may still
    wait on the pump's confirm screen, where it can be accepted (review 36, finding 1's harm)."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    nurse = make_user("owed-nurse")
    legacy(capture, {"status": "online", "timestamp": 4215}, -300)
    first = infusion_start(device_id=DEVICE, order=make_order(**FIGURES), user=nurse)
    start_handed(first, ago_s=100, acknowledged_ago_s=acknowledged_ago_s)
    legacy(capture, {"status": "online", "timestamp": 214215}, -90)  # maybe before the pump had A's START
    retry = retry_rejected(capture, nurse, first)
    assert retry.status == SessionStatus.PENDING and retry.answer_in_doubt == "rejected", (
        f"a Reject that may be A's (its START acknowledged by the broker only after the pump's last report, or never) "
        f"was applied to B: B is {retry.status} (answer_in_doubt={retry.answer_in_doubt!r})"
    )


def test_a_reboot_before_the_starts_puback_leaves_a_later_reject_in_doubt(django_capture_on_commit_callbacks):
    """A's START taken by paho at -100 s, acknowledged at -80 s; the pump booted at -98 s (its `online`, uptime 1 s,
    received at -97 s: too soon to say it had A). It may have received A's START after its reboot, so the reboot does
    not mean A can no longer be answered: its Reject may still come, and B's bare Reject stays in doubt."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    nurse = make_user("owed-nurse")
    legacy(capture, {"status": "online", "timestamp": 4215}, -300)
    first = infusion_start(device_id=DEVICE, order=make_order(**FIGURES), user=nurse)
    start_handed(first, ago_s=100, acknowledged_ago_s=80)
    legacy(capture, {"status": "online", "timestamp": 1000}, -97)
    retry = retry_rejected(capture, nurse, first)
    assert retry.status == SessionStatus.PENDING and retry.answer_in_doubt == "rejected", (
        f"a Reject that may be A's (the pump rebooted before the broker had A's START) was applied to B: B is "
        f"{retry.status} (answer_in_doubt={retry.answer_in_doubt!r})"
    )


def test_a_receipt_before_the_starts_puback_counts_as_the_pump_having_it(django_capture_on_commit_callbacks):
    """A's receipt came before its PUBACK was recorded (its START `delivered`, never `sent`): the pump surely had A's
    START then. A timed out and the pump answered the STOP that cleared its screen (idle): any Reject of A came before
    that, so retry B's bare Reject is B's."""
    capture = django_capture_on_commit_callbacks
    make_device(DEVICE, has_presence=False)
    nurse = make_user("owed-nurse")
    legacy(capture, {"status": "online", "timestamp": 4215}, -300)
    first = infusion_start(device_id=DEVICE, order=make_order(**FIGURES), user=nurse)
    start_handed(first, ago_s=100, acknowledged_ago_s=None)
    legacy(capture, {"status": "received_start_command", "timestamp": 204215, "currentInfusion": ON_SCREEN}, -99)
    first.refresh_from_db()
    assert first.delivered_at is not None, f"A's own receipt was not applied (A is {first.status})"
    infusion_time_out(infusion_id=first.infusion_id)
    legacy(capture, {"status": "idle", "timestamp": 254215}, -50)
    retry = order_sent(nurse, ago_s=2)
    legacy(capture, {"status": "rejected", "timestamp": 420000})
    retry.refresh_from_db()
    assert retry.status == SessionStatus.REJECTED, (
        f"the pump, heard after its receipt of A, rejected B; B is {retry.status} "
        f"(answer_in_doubt={retry.answer_in_doubt!r})"
    )
