"""An order the server had ended runs again on the pump's word (evidence wins), and what that does to the server's
own time-out STOP and to a newer order (reviewer findings 10 and 1).

The server never stops on its own a pump whose reports show it infusing an order: a time-out's STOP still queued
(the bridge's broker link was down) is withdrawn when the pump's late confirmation or running progress arrives,
and the outbox re-checks the server's own STOP just before it publishes it. So does a cancel's STOP (it only clears
the confirm screen); a Stop a clinician asked for goes out.
A pump reporting an old order while a newer one runs moves nothing and raises a high alarm.
"""

import json
from datetime import timedelta
from threading import Event

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Command, DeadLetter, DeviceEvent, InfusionSession
from devices.outbox_selectors import commands_to_publish
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.requests import infusion_cancel, infusion_request, infusion_time_out
from devices.services.sessions import infusion_start, session_transition
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from realtime.bridge.batch import BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order, make_user

pytestmark = pytest.mark.django_db


def ingest(capture, device_id: str, kind: str, body: dict, at_s: float = 1.0) -> None:
    message = InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(),
                             received_at=timezone.now() + timedelta(seconds=at_s))  # fmt: skip
    with capture(execute=True), transaction.atomic():
        BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run([message])


def stops_to_publish() -> list[tuple[str, str]]:
    waiting = commands_to_publish(now=timezone.now(), in_flight=[], limit=10)
    return [(command.kind, command.state) for command in waiting if command.kind == CommandKind.STOP_INFUSION]


@pytest.mark.parametrize(
    "kind,body",
    [
        ("infusion", {"confirmed": True}),
        ("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.4}),
    ],
)
def test_a_queued_timeout_stop_is_withdrawn_once_the_pump_reports_infusing_the_order(
    kind, body, django_capture_on_commit_callbacks
):
    make_device("F10")
    session = infusion_start(device_id="F10", order=make_order())
    infusion_time_out(infusion_id=session.infusion_id)  # housekeeping, while the bridge's broker link was down
    ingest(django_capture_on_commit_callbacks, "F10", kind, {**body, "infusionId": session.infusion_id})
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, "evidence won: the server knows the pump infuses it"
    alarms = list(Alarm.objects.filter(device__device_id="F10").values_list("type", flat=True))
    assert stops_to_publish() == [], (
        f"the order {session.infusion_id} runs (alarms {alarms}) yet the server's own time-out STOP is still "
        f"queued for publishing: {stops_to_publish()}; the pump will be stopped by the server"
    )
    stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
    assert stop.state == CommandState.SUPERSEDED and "withdrawn unsent" in stop.error, (
        f"the clinician's screen must say what happened to the server's STOP: {stop.state} ({stop.error!r})"
    )
    assert DeviceEvent.objects.filter(session=session, kind="server.stop_withdrawn").exists(), "withdrawal audited"


def test_a_cancels_stop_is_withdrawn_once_the_pump_runs_the_cancelled_order(django_capture_on_commit_callbacks):
    """The cancel asked to withdraw an unconfirmed order and clear the pump's screen, never to stop an infusion: when
    the person at the pump confirmed it after all (the confirmation arrives after the cancel, its STOP still queued),
    the server does not stop the running pump on its own; `confirmed_late` tells the nurse, who stops it on purpose
    with Stop if it must stop. Before, the cancel's STOP went out and stopped the infusion just confirmed."""
    make_device("F10B")
    nurse = make_user("nurse10")
    session = infusion_start(device_id="F10B", order=make_order(), user=nurse)
    infusion_cancel(infusion_id=session.infusion_id, user=nurse)
    ingest(
        django_capture_on_commit_callbacks, "F10B", "infusion", {"confirmed": True, "infusionId": session.infusion_id}
    )
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING
    alarms = list(Alarm.objects.filter(session=session, state=AlarmState.ACTIVE).values_list("type", flat=True))
    assert "confirmed_late" in alarms, f"the nurse is told the cancelled order runs: {alarms}"
    assert stops_to_publish() == [], "the cancel's STOP would stop the order the pump now runs: nobody asked that"
    stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
    assert stop.state == CommandState.SUPERSEDED and "withdrawn unsent: the pump runs" in stop.error, stop.error
    assert DeviceEvent.objects.filter(session=session, kind="server.stop_withdrawn", user=nurse).exists()
    asked = infusion_request(device_id="F10B", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                             user=nurse)  # fmt: skip
    assert stops_to_publish() == [(CommandKind.STOP_INFUSION, CommandState.QUEUED)] and not asked.clears_screen, (
        "a Stop the nurse asks for, of the infusion she sees running, goes out"
    )


class RecordingLink:
    """A connected broker link that records what it is handed."""

    def __init__(self) -> None:
        self.connected, self.published = Event(), []
        self.connected.set()

    def publish(self, topic: str, body: bytes, *, expiry_s: int) -> int:
        self.published.append((topic, json.loads(body)["command"]))
        return len(self.published)

    def forget(self, mid: int) -> None:
        pass


def test_the_outbox_rechecks_the_servers_own_stop_before_publishing_it():
    """The safety net: a server STOP whose session runs on the pump by the time the outbox reaches it stays unsent."""
    make_device("F10C")
    session = infusion_start(device_id="F10C", order=make_order())
    infusion_time_out(infusion_id=session.infusion_id)
    with transaction.atomic():  # the session runs again by a road that did not withdraw the STOP
        session.refresh_from_db()
        session_transition(device=device_lock(device_id="F10C"), session=session, to=SessionStatus.RUNNING,
                           reason="confirmed after timed_out")  # fmt: skip
    link = RecordingLink()
    CommandOutbox(link).tick(timezone.now())
    stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
    assert ("devices/F10C/commands", "STOP_INFUSION") not in link.published, (
        f"the outbox published the server's own STOP to a pump running {session.infusion_id}"
    )
    assert stop.state == CommandState.SUPERSEDED and "withdrawn unsent" in stop.error, f"{stop.state} {stop.error!r}"


def test_the_outbox_still_publishes_a_stop_a_clinician_asked_for():
    make_device("F10D")
    nurse = make_user("nurse10d")
    session = infusion_start(device_id="F10D", order=make_order(), user=nurse)
    with transaction.atomic():
        session.refresh_from_db()
        session_transition(device=device_lock(device_id="F10D"), session=session, to=SessionStatus.RUNNING,
                           reason="confirmed")  # fmt: skip
    infusion_request(device_id="F10D", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id, user=nurse)
    link = RecordingLink()
    CommandOutbox(link).tick(timezone.now())
    assert ("devices/F10D/commands", "STOP_INFUSION") in link.published, f"the nurse's STOP: {link.published}"


@pytest.mark.parametrize(
    "kind,body,newer_paused",
    [
        ("infusion", {"confirmed": True}, False),
        ("infusion", {"confirmed": True}, True),
        ("bolus", {"action": "BOLUS_COMPLETED", "bolusDelivered": 5.0}, False),
    ],
)
def test_the_timed_out_order_reported_while_a_newer_one_is_under_way_is_not_lost(
    kind, body, newer_paused, django_capture_on_commit_callbacks
):
    device_id = f"F1C_{kind}_{newer_paused}"
    make_device(device_id)
    first = infusion_start(device_id=device_id, order=make_order())
    infusion_time_out(infusion_id=first.infusion_id)
    second = infusion_start(device_id=device_id, order=make_order(flow_rate_ml_min=1.0, planned_time_min=30.0))
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        infusion_confirm(device=device, infusion_id=second.infusion_id, confirmed=True, parameters=None,
                         confirmation={"confirmed": True})  # fmt: skip
        if newer_paused:
            second.refresh_from_db()
            session_transition(device=device, session=second, to=SessionStatus.PAUSED, reason="paused at the pump")
    report = {**body, "infusionId": first.infusion_id}
    ingest(django_capture_on_commit_callbacks, device_id, kind, report)
    dead = list(DeadLetter.objects.values_list("reason", "detail"))
    alarms = list(Alarm.objects.filter(session=first, state=AlarmState.ACTIVE).values_list("type", "priority"))
    assert not dead and alarms == [("confirmed_late", "high")], (
        f"the pump reported ({kind}) the timed-out order {first.infusion_id} while {second.infusion_id} is under way: "
        f"the message was dead-lettered {dead[:1]} and the alarms about it are {alarms}"
    )
    first.refresh_from_db()
    second.refresh_from_db()
    newer = SessionStatus.PAUSED if newer_paused else SessionStatus.RUNNING
    assert (first.status, second.status) == (SessionStatus.TIMED_OUT, newer), (
        "the newer order stays as it is; the old one does not run again"
    )
    ingest(django_capture_on_commit_callbacks, device_id, kind, report, at_s=2.0)
    assert Alarm.objects.get(session=first, type="confirmed_late").count == 1, "a repeat raises nothing again"


def test_the_time_out_stop_is_withdrawn_before_publishing_when_an_original_firmware_pump_reports_running(
    django_capture_on_commit_callbacks,
):
    """Review 2: the outbox's re-check applies `_end_pending`'s rule too: no server STOP to a pump reporting infusing.

    The original firmware names no infusion: its running progress after the time-out does not make the order run,
    yet the server knows the pump infuses (infusing_without_order), so its own queued STOP must not go out.
    """
    make_device("LEG1")
    session = infusion_start(device_id="LEG1", order=make_order())
    ingest(django_capture_on_commit_callbacks, "LEG1", "status",
           {"deviceId": "LEG1", "status": "received_start_command", "timestamp": 52010}, at_s=0.5)  # fmt: skip
    infusion_time_out(infusion_id=session.infusion_id)  # its confirmation (QoS 0) never arrived
    stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
    assert stop.state == CommandState.QUEUED, "the pump reported nothing running at the time-out: STOP queued"
    ingest(django_capture_on_commit_callbacks, "LEG1", "progress",
           {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 5.04, "volumeRemainingMl": 24.86,
            "timestamp": 65510}, at_s=2.0)  # fmt: skip
    active = Alarm.objects.filter(device__device_id="LEG1", state=AlarmState.ACTIVE)
    alarms = list(active.values_list("type", flat=True))
    link = RecordingLink()
    CommandOutbox(link).tick(timezone.now())
    assert ("devices/LEG1/commands", "STOP_INFUSION") not in link.published, (
        f"the outbox published the server's own time-out STOP to pump LEG1, which reports infusing (alarms {alarms})"
    )
    stop.refresh_from_db()
    assert stop.state == CommandState.SUPERSEDED and "withdrawn unsent" in stop.error, f"{stop.state} {stop.error!r}"
    assert DeviceEvent.objects.filter(session=session, kind="server.stop_withdrawn").exists(), "withdrawal audited"
