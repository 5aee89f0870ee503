"""A command the outbox holds in flight (handed to paho, its PUBACK not yet in) is never declared ended while paho may
still send it.

A PAUSE published one second before its deadline (the broker back late) waits in flight for its PUBACK until
`COMMAND_ACK_TIMEOUT_S` after its publication, nine seconds past its deadline. Housekeeping ended it `failed` at the
deadline ("published, but neither acknowledged by the broker nor acted on in time") and left it with paho, which sends
it again after a reconnect (or once its in-flight window frees): a command published after it was declared failed,
that a pump ignoring `expiresAt` (the original firmware) carries out, its pause then read "at the pump" beside her
failed Pause. The outbox, which ticks before housekeeping at the same moment, now ends it itself at its deadline:
withdrawn from paho first, then `failed`, "the pump may still receive it" (the broker may hold it). One ended by
another road while in flight (another bridge's housekeeping after the lead moved, a restart) is withdrawn at the
outbox's next tick. Never "expired: never reached the pump" was already safe: the outbox marks a command handed
(`handed_at`) in a commit before paho has it, and every end is decided under the pump's lock from the row, so even one
whose publication's record failed ended `failed` (the third test passed that assertion before, and failed only on
paho still holding it).
"""

import json
import threading
from datetime import timedelta

import pytest

from devices.models import Command
from devices.services.command_deadlines import commands_end_overdue
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState
from realtime.bridge.housekeeping import Housekeeping
from realtime.bridge.outbox import NOT_ACKNOWLEDGED, CommandOutbox
from tests.factories import make_device, make_user
from tests.support.ingest import started_order

pytestmark = pytest.mark.django_db


class PahoLikeLink:
    """The broker link as paho keeps a QoS 1 publish: held until its PUBACK, sent again after a reconnect, unless
    withdrawn (`forget`)."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.connected.set()
        self.held: dict[int, str] = {}
        self._mids = iter(range(1, 1000))

    def publish(self, topic: str, body: bytes, *, expiry_s: int) -> int:
        mid = next(self._mids)
        self.held[mid] = json.loads(body)["command"]
        return mid

    def forget(self, mid: int) -> None:
        self.held.pop(mid, None)

    def sent_again_after_a_reconnect(self) -> list[str]:
        return list(self.held.values())


def paused_late(device_id: str) -> tuple[Command, PahoLikeLink, CommandOutbox]:
    """A nurse's PAUSE of a running order, published one second before its deadline, no PUBACK yet."""
    make_device(device_id)
    session = started_order(device_id)
    pause = infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=make_user("nurse"))  # fmt: skip
    link = PahoLikeLink()
    outbox = CommandOutbox(link)
    outbox.tick(pause.expires_at - timedelta(seconds=1))
    assert link.held == {1: "PAUSE_INFUSION"}, "the PAUSE was handed to paho (the test's premise)"
    return pause, link, outbox


def test_a_pause_in_flight_at_its_deadline_is_withdrawn_from_paho_before_it_is_declared_failed():
    pause, link, outbox = paused_late("FLIGHT_1")
    deadline = pause.expires_at
    outbox.tick(deadline)  # the worker's turn at the deadline: the outbox first, then housekeeping, the same moment
    Housekeeping().overdue_commands(deadline)
    pause = Command.objects.get(pk=pause.pk)
    assert pause.state == CommandState.FAILED, f"the PAUSE ends at its deadline: {pause.state}"
    assert link.sent_again_after_a_reconnect() == [], (
        f"the PAUSE was declared failed ({pause.error!r}) while paho still held it, to send again after a reconnect"
    )
    assert pause.error == NOT_ACKNOWLEDGED, f"the broker may hold it: the screen must say so, not {pause.error!r}"
    outbox.acked.put(1)  # its PUBACK after all: nothing moves
    outbox.tick(deadline + timedelta(seconds=2))
    assert Command.objects.get(pk=pause.pk).state == CommandState.FAILED


def test_a_command_ended_by_another_road_while_in_flight_is_withdrawn_from_paho():
    pause, link, outbox = paused_late("FLIGHT_2")
    deadline = pause.expires_at
    assert commands_end_overdue(now=deadline) == 1, "ended elsewhere (another bridge's housekeeping, the lead moved)"
    outbox.tick(deadline + timedelta(seconds=2))
    assert link.sent_again_after_a_reconnect() == [], (
        "a command ended by another road stayed with paho, to be sent after it was declared failed"
    )


def test_a_pause_in_flight_whose_publication_was_never_recorded_is_never_called_unsent(monkeypatch):
    def record_fails(**kwargs) -> None:
        raise RuntimeError("the publication's record failed after paho took it")

    monkeypatch.setattr("realtime.bridge.outbox.command_published", record_fails)
    pause, link, outbox = paused_late("FLIGHT_3")
    assert Command.objects.get(pk=pause.pk).published_at is None, "its publication is not recorded (the premise)"
    outbox.tick(pause.expires_at)
    Housekeeping().overdue_commands(pause.expires_at)
    pause = Command.objects.get(pk=pause.pk)
    assert pause.state == CommandState.FAILED, (
        f"a PAUSE paho had reads {pause.state} ({pause.error!r}): the screen would say it never reached the pump"
    )
    assert link.sent_again_after_a_reconnect() == [], "declared failed while paho still held it"
