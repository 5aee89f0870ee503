"""A command handed to the broker is told to the pages as published (`device:command` with `publishedAt`), and a
command published again by a restarted bridge keeps its first publication.

Before: `command_published` stored `published_at` but told nobody (a START's moved deadline apart), and the payload
had no `publishedAt`: a PAUSE or STOP the bridge had handed to the broker, its PUBACK not yet recorded (a congested
broker, or a bridge restarted before the PUBACK), still read "waiting to be sent" on the monitor, though the pump may
already have acted on it. And a START published again after a bridge restart had its deadline moved to run from the
second publication: the page's countdown ran longer than the order's time-out (which runs from the first,
`start_waiting_from`) and than the deadline the pump kept (it de-duplicates by `commandId`).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.housekeeping_selectors import start_lifetime
from devices.models import ChangeLogEntry, Command
from devices.services.requests import infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState
from protocol import events
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import confirmed_order
from tests.support.links import RecordingLink

pytestmark = pytest.mark.django_db


def told(command: Command) -> list[dict]:
    """Every `device:command` body the change log holds for `command`, oldest first (what subscribers got)."""
    entries = ChangeLogEntry.objects.filter(device=command.device, event=events.DEVICE_COMMAND).order_by("id")
    bodies = [entry.body["command"] for entry in entries]
    return [body for body in bodies if body["commandId"] == str(command.command_id)]


def test_a_command_handed_to_the_broker_is_told_published_before_its_puback():
    make_device("TOLD_1", last_seen_at=timezone.now())
    session = confirmed_order("TOLD_1")
    pause = infusion_request(device_id="TOLD_1", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=make_user("nurse"))  # fmt: skip
    link = RecordingLink()  # takes the publish; no PUBACK comes
    CommandOutbox(link).tick(timezone.now())
    assert "PAUSE_INFUSION" in [sent["command"] for sent in link.published], "the outbox handed the PAUSE over"
    pause.refresh_from_db()
    assert pause.state == CommandState.QUEUED and pause.published_at is not None
    last = told(pause)[-1]
    assert last.get("publishedAt") is not None, (
        f"the PAUSE was handed to the broker at {pause.published_at}, yet the last device:command the monitor got "
        f"says {last.get('state')!r} without publishedAt: it still reads 'waiting to be sent'"
    )
    assert last["state"] == "queued" and last["sentAt"] is None, "its PUBACK is not recorded: not yet `sent`"


def test_a_command_published_again_after_a_bridge_restart_keeps_its_first_publication():
    make_device("TOLD_2", last_seen_at=timezone.now())
    session = infusion_start(device_id="TOLD_2", order=make_order(), user=make_user("nurse2"))
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    first_at = start.created_at + timedelta(seconds=2)
    first = RecordingLink()
    CommandOutbox(first).tick(first_at)  # handed to the broker; the bridge then restarts before the PUBACK
    start.refresh_from_db()
    assert start.published_at == first_at and start.expires_at == first_at + start_lifetime()
    told_before = len(told(start))

    again = RecordingLink()
    CommandOutbox(again).tick(first_at + timedelta(seconds=8))  # the restarted bridge: nothing in flight
    assert [sent["command"] for sent in again.published] == ["START_INFUSION"], "published again (QoS 1, same id)"
    start.refresh_from_db()
    assert start.published_at == first_at, "its publication is the first one"
    assert start.expires_at == first_at + start_lifetime(), (
        f"published again 8 s later, the START's deadline moved to {start.expires_at}: the page's countdown and the "
        f"stored deadline run 8 s past the order's time-out (from {first_at}) and the deadline the pump kept"
    )
    assert again.published[0]["expiresAt"] == first.published[0]["expiresAt"], "the pump is told the same deadline"
    assert again.published[0]["commandId"] == first.published[0]["commandId"], "the pump de-duplicates by it"
    assert len(told(start)) == told_before, "nothing new to tell: the page already shows it sent"
