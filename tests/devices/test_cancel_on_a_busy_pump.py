"""Cancelling a start never stops an infusion the pump was already running (review 3, "cancel stops the running
infusion").

`infusion_start` accepts an order for a pump infusing without an order (the original firmware ignores a START while
busy), and the waiting window waits. On the old code the nurse's Cancel queued STOP_INFUSION whatever the pump
reported, and the window said "The pump was told to clear its screen": the original firmware knows no infusion ids,
so that STOP stopped the infusion running before the order was placed, which nobody asked to stop. Now a cancel
withholds the STOP from a pump that was infusing before the order and still is (as the time-out does), the session's
reason says so, and that infusion can still be stopped on purpose (the pump page's Stop, without an order).
"""

import json
import threading

import pytest
from django.utils import timezone

from devices.models import ChangeLogEntry, Command, DeviceEvent, InfusionSession
from devices.services.requests import infusion_cancel, infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from protocol import events
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

RUNNING = {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 12.0}  # the original firmware: no infusionId


class RecordingLink:
    """The outbox's broker link, recording the commands it publishes: (topic, command)."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.connected.set()
        self.published: list[tuple[str, str]] = []

    def publish(self, topic: str, body: bytes, *, expiry_s: int) -> int:
        self.published.append((topic, json.loads(body)["command"]))
        return len(self.published)

    def forget(self, mid: int) -> None:
        pass


def stops_published(device_id: str) -> list[tuple[str, str]]:
    """What the bridge's outbox publishes now: the STOPs to this pump."""
    link = RecordingLink()
    CommandOutbox(link).tick(timezone.now())
    return [sent for sent in link.published if sent == (f"devices/{device_id}/commands", "STOP_INFUSION")]


def test_cancelling_a_start_does_not_stop_the_infusion_already_running_on_the_pump(django_capture_on_commit_callbacks):
    make_device("BUSY_1", last_seen_at=timezone.now())
    nurse = make_user("nurse")
    ingest([report("BUSY_1", "progress", {**RUNNING, "timestamp": 120000})], django_capture_on_commit_callbacks)
    order = infusion_start(device_id="BUSY_1", order=make_order(drug="Heparin"), user=nurse)
    ingest([report("BUSY_1", "progress", {**RUNNING, "deliveredVolumeMl": 12.5, "timestamp": 121000}, 1)],
           django_capture_on_commit_callbacks)  # it goes on infusing its own  # fmt: skip
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)  # the waiting window's Cancel
    assert stops_published("BUSY_1") == [], (
        "cancelling the unconfirmed Heparin order sent STOP_INFUSION to a pump that was infusing before the order was "
        "placed: the original firmware stops that infusion"
    )
    cancelled = InfusionSession.objects.get(pk=order.pk)
    assert cancelled.status == SessionStatus.CANCELLED
    assert "nothing was sent to the pump" in cancelled.status_reason, f"the nurse is told: {cancelled.status_reason}"
    assert DeviceEvent.objects.filter(session=cancelled, kind="server.stop_withheld", user=nurse).exists()
    stop = infusion_request(device_id="BUSY_1", kind=CommandKind.STOP_INFUSION, infusion_id=None, user=nurse)
    assert stop.session is None, "the running infusion can still be stopped on purpose (Stop, without an order)"


def test_a_cancel_clears_the_confirm_screen_of_a_pump_that_was_idle(django_capture_on_commit_callbacks):
    make_device("IDLE_1", last_seen_at=timezone.now())
    nurse = make_user("nurse")
    order = infusion_start(device_id="IDLE_1", order=make_order(), user=nurse)
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)
    assert len(stops_published("IDLE_1")) == 1, "the cancel's STOP clears the pump's confirm screen"
    assert "told to clear its screen" in InfusionSession.objects.get(pk=order.pk).status_reason


def test_a_pump_that_stopped_its_own_infusion_since_the_order_gets_the_cancels_stop(django_capture_on_commit_callbacks):
    make_device("BUSY_2", last_seen_at=timezone.now())
    nurse = make_user("nurse")
    ingest([report("BUSY_2", "progress", {**RUNNING, "timestamp": 120000})], django_capture_on_commit_callbacks)
    order = infusion_start(device_id="BUSY_2", order=make_order(), user=nurse)
    ingest([report("BUSY_2", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)
    assert len(stops_published("BUSY_2")) == 1, "nothing runs any more: the STOP only clears the confirm screen"


@pytest.mark.parametrize(
    ("kind", "body", "pump_does"),
    [
        ("progress", {**RUNNING, "timestamp": 121000}, "reports infusing"),  # started at the pump, without the order
        ("status", {"status": "paused", "infusionId": "inf_its_own"}, "reports an infusion of its own, paused"),
    ],
)
def test_a_cancels_stop_is_withheld_at_publication_from_a_pump_infusing_since_the_cancel(
    kind, body, pump_does, django_capture_on_commit_callbacks
):
    """Round 1's fault again, by another road: the pump was idle when the nurse cancelled, so the STOP clearing its
    confirm screen was queued; before it went out (the broker link down a moment) the pump started an infusion of its
    own. The server's time-out STOP is re-checked at publication; the cancel's was not, and stopped that infusion,
    which nobody asked to stop (the Cancel dialog offers no such choice: Stop does). Now it is withheld, and what the
    nurse reads (the order's reason, the waiting window, the monitor) says nothing was sent, and why."""
    device_id = f"BUSY_3_{kind}"
    make_device(device_id, last_seen_at=timezone.now())
    nurse = make_user("nurse")
    order = infusion_start(device_id=device_id, order=make_order(drug="Heparin"), user=nurse)
    infusion_cancel(infusion_id=order.infusion_id, user=nurse)
    stop = Command.objects.get(session=order, kind=CommandKind.STOP_INFUSION)
    assert "told to clear its screen" in InfusionSession.objects.get(pk=order.pk).status_reason, "the pump was idle"
    ingest([report(device_id, kind, body, 1)], django_capture_on_commit_callbacks)  # before the STOP went out

    assert stops_published(device_id) == [], (
        f"the cancel's STOP, meant to clear a confirm screen, was published to pump {device_id}, which {pump_does}: "
        "it stops an infusion nobody asked to stop"
    )
    stop.refresh_from_db()
    assert stop.clears_screen, "queued to clear the confirm screen, not to stop an infusion"
    assert stop.state == CommandState.SUPERSEDED and stop.error == f"withdrawn unsent: the pump {pump_does}", (
        f"the monitor's command list must say the STOP was not sent and why: {stop.state} ({stop.error!r})"
    )
    cancelled = InfusionSession.objects.get(pk=order.pk)
    assert "nothing was sent to the pump" in cancelled.status_reason, cancelled.status_reason
    assert "told to clear its screen" not in cancelled.status_reason, f"a lie now: {cancelled.status_reason!r}"
    told = ChangeLogEntry.objects.filter(device=stop.device, event=events.DEVICE_SESSION).order_by("id").last()
    assert told.body["session"]["reason"] == cancelled.status_reason, "the watching screens are told the new reason"
    assert DeviceEvent.objects.filter(session=cancelled, kind="server.stop_withdrawn", user=nurse).exists()

    asked = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=None, user=nurse)
    assert stops_published(device_id) == [(f"devices/{device_id}/commands", "STOP_INFUSION")], (
        "the nurse's own Stop of the pump's infusion (without an order) is what stops it, and it goes out"
    )
    assert not asked.clears_screen
