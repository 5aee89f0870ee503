"""One command the outbox cannot publish or settle (its own fault, not the database's) must not stop the others,
nor housekeeping: before, it raised out of the outbox's tick every tick, so every command queued after it stayed
unpublished (a STOP never sent) and, in the worker's same guard, housekeeping never ran (no `communication_lost`,
no escalation) for as long as the command stayed queued."""

import pytest
from django.utils import timezone

from devices.models import Command
from devices.services.sessions import infusion_start
from devices.states import CommandState
from realtime.bridge import outbox as outbox_module
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order, make_ward
from tests.support.links import RecordingLink

pytestmark = pytest.mark.django_db


def starts_on(*device_ids: str) -> list[Command]:
    ward = make_ward("outbox")
    for device_id in device_ids:
        make_device(device_id, ward=ward)
        infusion_start(device_id=device_id, order=make_order())
    return list(Command.objects.order_by("created_at", "pk"))


def test_one_command_that_cannot_be_published_does_not_hold_back_the_others(monkeypatch):
    poison, good = starts_on("OUT_A", "OUT_B")
    build = outbox_module.command_envelope_build

    def failing_build(**kwargs):
        if kwargs["command_id"] == str(poison.command_id):
            raise ValueError("a command this code cannot encode")
        return build(**kwargs)

    monkeypatch.setattr(outbox_module, "command_envelope_build", failing_build)
    outbox = CommandOutbox(RecordingLink())
    for _ in range(3):
        outbox.tick(timezone.now())
    published = [body.get("commandId") for body in outbox.link.published]
    assert str(good.command_id) in published, "a command the outbox cannot publish held back the one after it"


def test_one_acknowledgement_that_cannot_be_settled_does_not_hold_back_the_others(monkeypatch):
    first, second = starts_on("ACK_A", "ACK_B")
    outbox = CommandOutbox(RecordingLink())
    outbox.tick(timezone.now())
    move = outbox_module.CommandOutbox._move

    def failing_move(device_id, command_pk, to, now, error=""):
        if command_pk == first.pk:
            raise ValueError("a command this code cannot settle")
        return move(device_id, command_pk, to, now, error)

    monkeypatch.setattr(outbox_module.CommandOutbox, "_move", staticmethod(failing_move))
    for mid in sorted(outbox.in_flight):
        outbox.acked.put(mid)
    for _ in range(3):
        outbox.tick(timezone.now())
    assert Command.objects.get(pk=second.pk).state == CommandState.SENT, "one PUBACK that fails held back the rest"


def test_housekeeping_runs_while_the_outbox_fails(monkeypatch):
    from realtime.bridge import worker

    class Checks:
        behind, ticks = False, 0

        def tick(self, now, *, connected_since, clock=None, parts=None) -> None:
            self.ticks += 1

        def clock_put_back(self, step) -> None:  # the test's monotonic clock runs ahead of the wall clock
            pass

    class FailingOutbox:
        acked = worker.queue.SimpleQueue()

        def tick(self, now) -> None:
            raise ValueError("the outbox's own fault")

    clock = [0.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    bridge = worker.Bridge()
    bridge.housekeeping, bridge.outbox = Checks(), FailingOutbox()
    bridge._next_heartbeat, bridge._heartbeat_connected_since = float("inf"), bridge.link.connected_since
    for turn in range(3):
        clock[0] = turn * (bridge.limits.housekeeping_s + 1)
        bridge.maybe_tick()
    assert bridge.housekeeping.ticks == 3, "a failing outbox stopped housekeeping (silence alarms, escalations)"
