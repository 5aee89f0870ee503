"""Review 6: a Stop of a pump's own infusion (infusionId null: a STOP without a session) that has not gone out
yet when the pump confirms the order that waited on it still goes out, and stops that order.

The nurse stopped "the infusion without an order" (requests.py accepts it while an order waits). Before the outbox
published it (the broker link down a few seconds, the bridge busy, or simply the next tick), the pump's own infusion
ended at the bedside and the waiting Heparin order was confirmed on its screen. When the end of the own infusion
reaches the server as a `stopped` status, the queued STOP is superseded ("not needed"). When it does not (the
original firmware's QoS 0 status lost, a pump that reports the end only by its next state, or reports it another way
than a `stopped` status), nothing withdraws the session-less STOP: the order running supersedes only its own
session's commands, so the STOP is published at the next tick with infusionId null, which the original firmware
(and the simulator: `handle_command` -> `self.stop()`) applies to whatever runs: the Heparin order nobody asked to
stop, its session then recorded as stopped. A confirmation of an order is itself evidence that the own infusion is
over; the request-time check (`_infusion_shown_check`) is bypassed by the delay.
"""

import pytest
from django.utils import timezone

from devices.models import Command, DeviceEvent, InfusionSession
from devices.outbox_selectors import commands_to_publish
from devices.services.publication import command_publish_check, command_published
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState, SessionStatus
from tests.devices.test_stop_unordered_while_an_order_waits import busy_pump_with_an_order_waiting
from tests.factories import make_user
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

BETWEEN = {  # what the server hears of the own infusion's end before the confirmation (None: nothing)
    "nothing": None,
    "completed-status": ("status", {"status": "completed"}),
    "idle-status": ("status", {"status": "idle"}),
    "manual-stop-action": ("actions", {"action": "MANUAL_STOP", "source": "device_screen"}),
    "stopped-status": ("status", {"status": "stopped"}),  # the one case handled (control)
}


@pytest.mark.parametrize("between", list(BETWEEN))
def test_a_queued_stop_of_the_own_infusion_never_goes_out_once_the_waiting_order_runs(
    between, django_capture_on_commit_callbacks
):
    device_id = f"BUSY_{between[:8].upper()}"
    order = busy_pump_with_an_order_waiting(device_id, django_capture_on_commit_callbacks)
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=None,
                            user=make_user("n"))  # fmt: skip
    assert stop.session is None and stop.state == CommandState.QUEUED
    # At the bedside, before the outbox published the STOP: the own infusion ended, the order was confirmed.
    if BETWEEN[between] is not None:
        kind, body = BETWEEN[between]
        ingest([report(device_id, kind, body, 2)], django_capture_on_commit_callbacks)
    ingest([report(device_id, "infusion", {"infusionId": order.infusion_id, "confirmed": True}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.RUNNING, "precondition: the order runs"

    now = timezone.now()
    still = Command.objects.get(pk=stop.pk)
    publishable = still in commands_to_publish(now=now, in_flight=[], limit=100) and command_publish_check(
        command=still, now=now
    )
    assert not publishable, (
        f"the STOP of the pump's own infusion ({still.state}, infusionId null) would still be published now that "
        f"the order {order.infusion_id} runs on the pump: it would stop the Heparin nobody asked to stop"
    )
    withdrawn = Command.objects.get(pk=stop.pk)
    assert withdrawn.state == CommandState.SUPERSEDED, "never published afterwards"
    if "withdrawn unsent" in withdrawn.error:  # else the pump's idle or stopped report made it "not needed" before
        assert DeviceEvent.objects.filter(kind="server.command_withdrawn", session=order).exists(), "audited"


def test_a_stop_of_the_own_infusion_goes_out_while_the_order_still_waits(django_capture_on_commit_callbacks):
    """Control: while the order only waits (never confirmed), the own infusion runs, and the nurse's Stop goes."""
    order = busy_pump_with_an_order_waiting("BUSY_WAITS", django_capture_on_commit_callbacks)
    stop = infusion_request(device_id="BUSY_WAITS", kind=CommandKind.STOP_INFUSION, infusion_id=None,
                            user=make_user("n"))  # fmt: skip
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.PENDING
    assert command_publish_check(command=Command.objects.get(pk=stop.pk), now=timezone.now())


def test_a_stop_of_the_own_infusion_published_before_a_restart_is_not_published_again_onto_the_order(
    django_capture_on_commit_callbacks,
):
    """Review 7: handed to the broker link before a restart, no PUBACK recorded; the restarted bridge publishes the
    queued command again. If the first copy never reached the pump, the copy would stop the order now running."""
    device_id = "BUSY_REPUB"
    order = busy_pump_with_an_order_waiting(device_id, django_capture_on_commit_callbacks)
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=None,
                            user=make_user("n"))  # fmt: skip
    # the old bridge: the check passed (no order runs yet), the link took it, no PUBACK; then the bridge stopped
    first = timezone.now()
    assert command_publish_check(command=Command.objects.get(pk=stop.pk), now=first)
    command_published(command=Command.objects.get(pk=stop.pk), now=first)
    # at the bedside: the own infusion ended by hand, the waiting order confirmed on the pump's screen
    ingest([report(device_id, "infusion", {"infusionId": order.infusion_id, "confirmed": True}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.RUNNING, "precondition: the order runs"

    now = timezone.now()  # the restarted bridge's first tick
    still = Command.objects.get(pk=stop.pk)
    assert still.state == CommandState.QUEUED and still.published_at is not None, still.state
    republished = still in commands_to_publish(now=now, in_flight=[], limit=100) and command_publish_check(
        command=still, now=now
    )
    assert not republished, (
        f"the restarted bridge publishes again the STOP of the pump's own infusion (infusionId null) while the order "
        f"{order.infusion_id} runs: a pump that never got the first copy stops the Heparin nobody asked to stop"
    )
    assert "not sent again" in Command.objects.get(pk=stop.pk).error, "it may have gone out once: not 'unsent'"
