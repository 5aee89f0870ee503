"""A START is never published after its deadline from the order (creation + confirmation timeout + 10 s), however
its `expiresAt` was moved by an attempt to publish it that did not go out; a queued one past that deadline expires.

Review 4 (MEDIUM): the pre-publish check stores the moved deadline (publication + 40 s) before the publish. When
`link.publish` found the link gone (None), or the bridge stopped between that commit and the publish, the moved
deadline stayed, the outbox selected the START by it and moved it again at the next attempt: a START published
70 s after the order (docs/protocol.md promises never), onto the confirm screen of a pump the nurse thought the
order had expired on.
"""

import json
import threading
from datetime import timedelta

import pytest

from devices.models import Command
from devices.services.command_deadlines import commands_end_overdue
from devices.services.publication import command_publish_check
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db


class FlakyLink:
    """Connected; its first `refusals` publishes find the link gone (None), the later ones go."""

    def __init__(self, refusals: int = 1) -> None:
        self.connected = threading.Event()
        self.connected.set()
        self.published: list[dict] = []
        self.refusals = refusals

    def publish(self, topic: str, body: bytes, *, expiry_s: int) -> int | None:
        if self.refusals > 0:
            self.refusals -= 1
            return None
        self.published.append(json.loads(body))
        return len(self.published)

    def forget(self, mid: int) -> None:
        pass


@pytest.fixture
def start(settings) -> Command:
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "CONFIRMATION_TIMEOUT_S": 30.0}
    make_device("ORDER_DEADLINE")
    session = infusion_start(device_id="ORDER_DEADLINE", order=make_order())
    return Command.objects.get(session=session, kind=CommandKind.START_INFUSION)


def state_of(command: Command) -> str:
    return Command.objects.get(pk=command.pk).state


def test_a_start_is_never_published_after_its_deadline_from_the_order(start):
    order_deadline = start.created_at + timedelta(seconds=40)
    outbox = CommandOutbox(FlakyLink())
    outbox.tick(start.created_at + timedelta(seconds=35))  # the link drops during this publish: nothing sent
    assert outbox.link.published == []
    outbox.tick(start.created_at + timedelta(seconds=70))  # 30 s past the order's deadline
    assert outbox.link.published == [], (
        f"the START was published 70 s after the order, 30 s past its deadline from the order ({order_deadline}); "
        f"its expiresAt had been moved to {Command.objects.get(pk=start.pk).expires_at} by a publish that never went"
    )


def test_a_publish_that_did_not_go_out_moves_no_deadline(start):
    order_deadline = start.created_at + timedelta(seconds=40)
    outbox = CommandOutbox(FlakyLink())
    outbox.tick(start.created_at + timedelta(seconds=35))
    assert Command.objects.get(pk=start.pk).expires_at == order_deadline, (
        "a deadline from a publication that never happened was stored (and told to every screen)"
    )
    commands_end_overdue(now=order_deadline)
    assert state_of(start) == CommandState.EXPIRED, "a START never published stays waiting past its order's deadline"


def test_the_bridge_stopping_between_the_check_and_the_publish(start):
    """The pre-publish check ran, then the bridge stopped before it published; the next bridge starts late."""
    assert command_publish_check(command=start, now=start.created_at + timedelta(seconds=35))
    restarted = CommandOutbox(FlakyLink(refusals=0))
    restarted.tick(start.created_at + timedelta(seconds=45))
    assert restarted.link.published == [], "the restarted bridge published the START 45 s after the order"
    commands_end_overdue(now=start.created_at + timedelta(seconds=45))
    assert state_of(start) == CommandState.EXPIRED


def test_the_bridge_stopping_before_the_broker_acknowledged_it(start):
    """Handed to the link (its moved deadline stored), then the bridge stopped before the PUBACK: the next bridge,
    started past the order's deadline, does not publish it again."""
    first = CommandOutbox(FlakyLink(refusals=0))
    first.tick(start.created_at + timedelta(seconds=35))
    assert len(first.link.published) == 1
    moved = Command.objects.get(pk=start.pk)
    assert (moved.state, moved.expires_at) == (CommandState.QUEUED, start.created_at + timedelta(seconds=75))
    restarted = CommandOutbox(FlakyLink(refusals=0))
    restarted.tick(start.created_at + timedelta(seconds=45))
    assert restarted.link.published == [], "published again 45 s after the order, past its deadline from the order"
    assert not command_publish_check(command=moved, now=start.created_at + timedelta(seconds=45))


def test_a_start_published_at_a_later_attempt_within_its_deadline_gets_the_whole_time_from_then(start):
    outbox = CommandOutbox(FlakyLink())
    outbox.tick(start.created_at + timedelta(seconds=5))  # not sent
    published_at = start.created_at + timedelta(seconds=20)
    outbox.tick(published_at)
    assert [command["commandId"] for command in outbox.link.published] == [str(start.command_id)]
    assert outbox.link.published[0]["expiresAt"] == (published_at + timedelta(seconds=40)).isoformat(), (
        "the pump must be told the deadline from the publication that went out"
    )
    commands_end_overdue(now=start.created_at + timedelta(seconds=45))
    assert state_of(start) == CommandState.QUEUED, "a START handed to the broker is not expired from the order"
