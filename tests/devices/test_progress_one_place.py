"""A pump's latest progress is stored once, on the pump; a session sees it only while it is on.

"While it is on" is the order the pump's row saw things in: a session holds the progress applied after its
creation and, once ended, up to its end (`prior_progress_at`, `final_progress_at`), never a comparison of the
bridge's receive time with a moment another process stamped.
"""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import ChangeLogEntry, Device, InfusionSession
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.progress import progress_apply
from devices.services.requests import infusion_cancel
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from devices.views.presenters import monitor_state
from protocol import events
from protocol.schemas import payload_parse
from realtime.bridge.batch import BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from realtime.sio.snapshot import read_snapshot
from tests.factories import make_device, make_order
from tests.support.ingest import start_sent
from tests.support.sio import state_from_events

pytestmark = pytest.mark.django_db
PROGRESS = {"deliveredVolumeMl": 4.0, "progressPercent": 8}


def a_session(device: Device, **fields) -> InfusionSession:
    return InfusionSession.objects.create(device=device, flow_rate_ml_min=1, planned_volume_ml=50, planned_time_min=50,
                                          **fields)  # fmt: skip


def progress_events(device_id: str) -> list[dict]:
    return [
        change.body["progress"] for change in read_snapshot(device_id).changes if change.event == events.DEVICE_PROGRESS
    ]


def test_a_session_sees_the_pumps_progress_only_from_its_start() -> None:
    started = timezone.now()
    device = make_device("ONE_PLACE", latest_progress=PROGRESS, latest_progress_at=started - timedelta(seconds=5))
    session = a_session(
        device, status=SessionStatus.RUNNING, created_at=started, prior_progress_at=device.latest_progress_at
    )
    assert session.progress() is None, "progress from before the session began was shown as the session's"
    assert progress_events("ONE_PLACE") == [], "the snapshot showed an earlier report as this session's progress"
    Device.objects.filter(pk=device.pk).update(latest_progress_at=started + timedelta(seconds=1))
    assert InfusionSession.objects.get(pk=session.pk).progress() == PROGRESS
    assert [body["infusionId"] for body in progress_events("ONE_PLACE")] == [session.infusion_id]


def test_without_a_session_the_snapshot_shows_only_progress_after_the_last_session_ended() -> None:
    ended = timezone.now()
    device = make_device("ONE_ENDED", latest_progress=PROGRESS, latest_progress_at=ended - timedelta(seconds=1))
    session = a_session(device, status=SessionStatus.COMPLETED, created_at=ended - timedelta(minutes=5), ended_at=ended,
                        final_progress_at=device.latest_progress_at)  # fmt: skip
    assert session.progress() == PROGRESS, "an ended session lost its last progress"
    assert progress_events("ONE_ENDED") == [], "the ended session's last progress was shown as the pump's own"
    Device.objects.filter(pk=device.pk).update(latest_progress_at=ended + timedelta(seconds=1))
    assert InfusionSession.objects.get(pk=session.pk).progress() is None, "progress after the end joined the session"
    assert [body["infusionId"] for body in progress_events("ONE_ENDED")] == [None]


def progress_applied(device_id: str, received_at, percent: int) -> None:
    """The bridge's one-message path: a running progress report received at `received_at`, applied now."""
    report = payload_parse("progress", {"status": "running", "progressPercent": percent, "deliveredVolumeMl": 1.0,
                                        "timestamp": int(received_at.timestamp() * 1000)})  # fmt: skip
    with transaction.atomic():
        progress_apply(device=device_lock(device_id=device_id), report=report, received_at=received_at)


def live_progress(device_id: str) -> dict:
    """The newest `device:progress` the change log carried to live subscribers (its body)."""
    entry = ChangeLogEntry.objects.filter(device__device_id=device_id, event=events.DEVICE_PROGRESS).order_by("-id")[0]
    return entry.body


@pytest.mark.django_db(transaction=True)
def test_progress_received_before_a_cancel_elsewhere_but_applied_after_it_is_shown_as_live_subscribers_got_it():
    make_device("ORDER_END")
    session = infusion_start(device_id="ORDER_END", order=make_order())
    before_cancel = timezone.now()
    infusion_cancel(infusion_id=session.infusion_id)  # another process (a nurse on Daphne B) ends it first
    progress_applied("ORDER_END", before_cancel, 9)  # the bridge applies what it received before the cancel
    live = live_progress("ORDER_END")
    assert live["progress"].get("infusionId") is None and live["progress"]["progressPercent"] == 9
    shown = [change.body for change in read_snapshot("ORDER_END").changes if change.event == events.DEVICE_PROGRESS]
    assert [(body["progress"].get("infusionId"), body["progress"]["progressPercent"]) for body in shown] == [
        (None, 9)
    ], "a fresh snapshot differs from what live subscribers hold"
    assert InfusionSession.objects.get(pk=session.pk).progress() is None, "the cancelled session took it"


@pytest.mark.django_db(transaction=True)
def test_progress_received_before_a_start_elsewhere_but_applied_after_it_is_shown_as_live_subscribers_got_it():
    """Unnamed progress while an order waits is not the order's (it owns none until the pump is shown infusing it:
    a confirmation or evidence); live subscribers and a fresh snapshot agree on that."""
    make_device("ORDER_START")
    progress_applied("ORDER_START", timezone.now() - timedelta(seconds=30), 3)
    before_start = timezone.now()
    session = infusion_start(device_id="ORDER_START", order=make_order())
    progress_applied("ORDER_START", before_start, 4)
    assert live_progress("ORDER_START")["progress"]["infusionId"] is None, "the pending order took the pump's progress"
    shown = [change.body["progress"] for change in read_snapshot("ORDER_START").changes
             if change.event == events.DEVICE_PROGRESS]  # fmt: skip
    # The pump infuses its own beside the pending order: shown as the pump's (no infusion), as live subscribers got it.
    assert [(body.get("infusionId"), body["progressPercent"]) for body in shown] == [(None, 4)], (
        f"a fresh snapshot differs from what live subscribers hold beside the pending order: {shown}"
    )
    assert InfusionSession.objects.get(pk=session.pk).progress() is None, "the pending order took the pump's progress"


def live_client_state(device_id: str, snapshot) -> dict:
    """What a subscriber holds: `snapshot`'s events, then every change the log carried after its `seq`."""
    received = [(change.event, change.wire_payload()) for change in snapshot.changes]
    entries = ChangeLogEntry.objects.filter(device__device_id=device_id, seq__gt=snapshot.seq).order_by("seq")
    received += [(entry.event, {"deviceId": device_id, "seq": entry.seq, **entry.body}) for entry in entries]
    return state_from_events(received).as_dict()


def confirmed_late(device_id: str, session: InfusionSession) -> None:
    """The pump's confirmation of `session` after another process ended it: evidence wins, it runs again."""
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                         parameters=session.order, confirmation={"confirmed": True})  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("after_the_end", [False, True], ids=["its-own-progress", "progress-after-its-end"])
def test_a_session_running_again_after_its_end_shows_the_progress_live_subscribers_hold(after_the_end):
    make_device("ORDER_LATE")
    watching = read_snapshot("ORDER_LATE")
    session = infusion_start(device_id="ORDER_LATE", order=make_order())
    progress_applied("ORDER_LATE", timezone.now(), 5)  # the pending session's progress
    infusion_cancel(infusion_id=session.infusion_id)  # a nurse on another Daphne cancels it
    if after_the_end:
        progress_applied("ORDER_LATE", timezone.now(), 6)  # the pump's own, no session on
    confirmed_late("ORDER_LATE", session)  # the pump had started it: it runs again, confirmed late
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING
    mine, fresh = live_client_state("ORDER_LATE", watching), fresh_state("ORDER_LATE")
    assert mine["session"]["infusionId"] == fresh["session"]["infusionId"] == session.infusion_id
    assert mine["progress"] == fresh["progress"], "a fresh snapshot differs from what live subscribers hold"
    progress_applied("ORDER_LATE", timezone.now(), 7)  # the next report is the session's, live and fresh
    mine, fresh = live_client_state("ORDER_LATE", watching), fresh_state("ORDER_LATE")
    assert mine["progress"] == fresh["progress"] and fresh["progress"]["progressPercent"] == 7
    assert fresh["progress"]["infusionId"] == session.infusion_id


def fresh_state(device_id: str) -> dict:
    return state_from_events([(change.event, change.wire_payload()) for change in read_snapshot(device_id).changes]
                             ).as_dict()  # fmt: skip


def ingested(capture, device_id: str, kind: str, body: dict, at_s: float = 0.0) -> None:
    """The bridge's batch path: one message received `at_s` seconds from now, applied and committed."""
    message = InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(),
                             received_at=timezone.now() + timedelta(seconds=at_s))  # fmt: skip
    with capture(execute=True), transaction.atomic():
        BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run([message])


BUSY = {
    "status": "running",
    "flowRate": 1.0,
    "deliveredVolumeMl": 22.0,
    "volumeRemainingMl": 8.0,
    "progressPercent": 73.3,
}


def test_progress_received_while_an_order_waited_is_not_that_orders_once_the_pump_confirms_it(
    django_capture_on_commit_callbacks,
):
    """Review 2: a busy pump's own progress, received while a new order was pending, stays the pump's once it runs."""
    make_device("BUSY")
    ingested(django_capture_on_commit_callbacks, "BUSY", "progress", BUSY)  # infusing without an order
    order = infusion_start(device_id="BUSY", order=make_order())
    ingested(django_capture_on_commit_callbacks, "BUSY", "progress", BUSY, at_s=1.0)  # still its own
    assert InfusionSession.objects.get(pk=order.pk).progress() is None, "a pending order owns no progress"
    ingested(django_capture_on_commit_callbacks, "BUSY", "infusion",
             {"confirmed": True, "infusionId": order.infusion_id}, at_s=2.0)  # fmt: skip
    session = InfusionSession.objects.get(pk=order.pk)
    assert session.status == SessionStatus.RUNNING
    shown = monitor_state(Device.objects.get(device_id="BUSY"))["progress"]
    assert session.progress() is None and shown is None, (
        f"order {order.infusion_id} just confirmed, none of its progress received yet, but it is shown with the "
        f"pump's earlier infusion's figures: {shown}"
    )
    assert progress_events("BUSY") == [], "a fresh snapshot showed the earlier infusion's figures as the order's"


@pytest.mark.parametrize("firmware", ["modern", "original"])
def test_the_running_report_that_makes_a_pending_order_run_is_that_orders_progress(
    firmware, django_capture_on_commit_callbacks
):
    """Evidence runs before the report is stored: the running progress that makes the order run is its first."""
    device_id = f"EVID_{firmware}"
    make_device(device_id)
    ingested(django_capture_on_commit_callbacks, device_id, "progress", BUSY)  # infusing without an order
    order = infusion_start(device_id=device_id, order=make_order())
    ingested(django_capture_on_commit_callbacks, device_id, "progress", BUSY, at_s=1.0)  # still its own
    mine = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.4, "volumeRemainingMl": 29.6}
    if firmware == "modern":
        mine["infusionId"] = order.infusion_id
    else:  # names no infusion: running after its received_start_command (its START sent) is the evidence
        start_sent(order)
        ingested(django_capture_on_commit_callbacks, device_id, "status",
                 {"status": "received_start_command", "timestamp": 52010}, at_s=2.0)  # fmt: skip
        mine["timestamp"] = 53010
    ingested(django_capture_on_commit_callbacks, device_id, "progress", mine, at_s=3.0)
    session = InfusionSession.objects.get(pk=order.pk)
    assert session.status == SessionStatus.RUNNING, f"the running report was evidence: {session.status}"
    shown = monitor_state(Device.objects.get(device_id=device_id))["progress"] or {}
    assert (shown.get("infusionId"), shown.get("deliveredVolumeMl")) == (order.infusion_id, 0.4), (
        f"the report that made order {order.infusion_id} run is its first progress, yet the monitor shows {shown}"
    )
    assert [(body["infusionId"], body["deliveredVolumeMl"]) for body in progress_events(device_id)] == [
        (order.infusion_id, 0.4)
    ], "a fresh snapshot differs from the monitor"
