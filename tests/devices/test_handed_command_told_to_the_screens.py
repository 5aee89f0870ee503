"""A command the outbox marked handed (`handed_at`, committed before paho has it) is told to the screens as handed
(`device:command` with `handedAt`), in the mark's own commit, and told again if the link refuses it (mark taken back).

Review 26, finding 4: a command whose publication the bridge never recorded (it stalled or died between paho and its
record, issue 15) is, by the server's own rule, one that "may have reached the pump" (`went_out`, `is_published`).
The screens were never told: the mark recorded no change and `device:command` carried no `handedAt`, so its body was
the very body of a command never handed. The monitor (`format.js::commandStateText`, reading `publishedAt` only) said
"waiting to be sent" for it, and 2 s past its deadline "NOT SENT by its deadline: it can no longer reach the pump"
until a keeper ended it `failed` ("it may have reached the pump"), while the pump may already have paused.
"""

import pytest

from devices import payloads
from devices.models import ChangeLogEntry, Command
from devices.services.commands import is_published
from devices.services.publication import commands_handed_mark, commands_handed_unmark
from devices.services.requests import infusion_request
from devices.states import CommandKind
from protocol import events
from protocol.payload_codec import payload_to_wire
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order

pytestmark = pytest.mark.django_db


def told(command: Command) -> list[dict]:
    """Every `device:command` body the change log holds for `command`, oldest first (what subscribers got)."""
    entries = ChangeLogEntry.objects.filter(device=command.device, event=events.DEVICE_COMMAND).order_by("id")
    bodies = [entry.body["command"] for entry in entries]
    return [body for body in bodies if body["commandId"] == str(command.command_id)]


def snapshot_of(command: Command) -> dict:
    """The body a snapshot (or the page's first render) gives for the command now: the same payload function."""
    stored = Command.objects.select_related("session", "created_by").get(pk=command.pk)
    return payload_to_wire(payloads.command_body(stored))["command"]


def paused(device_id: str) -> Command:
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    return infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                            user=make_user(f"nurse-{device_id}"), reason="line check")  # fmt: skip


def test_a_command_handed_to_the_broker_is_not_shown_as_one_never_handed():
    pause = paused("R26_HANDED")
    unhanded = payloads.command_body(Command.objects.get(pk=pause.pk)).model_dump(mode="json")["command"]
    commands_handed_mark(commands=[pause], now=pause.created_at)  # paho has it now; the bridge stalls here
    handed = Command.objects.get(pk=pause.pk)
    assert is_published(handed), "precondition: the server counts it as gone out"
    shown = payloads.command_body(handed).model_dump(mode="json")["command"]
    assert shown != unhanded, (
        f"a Pause the server counts as gone out ('may have reached the pump') is sent to the screens exactly as one "
        f"never handed over: {shown} -> the monitor says 'waiting to be sent', then 'NOT SENT ... can no longer "
        f"reach the pump'"
    )


def test_the_mark_is_told_in_its_own_commit_and_the_snapshot_says_the_same():
    pause = paused("HANDED_TOLD")
    before = len(told(pause))
    commands_handed_mark(commands=[pause], now=pause.created_at)
    bodies = told(pause)
    assert len(bodies) == before + 1, "the mark records one device:command change for the command it marks"
    assert bodies[-1]["handedAt"] is not None and bodies[-1]["publishedAt"] is None and bodies[-1]["state"] == "queued"
    assert bodies[-1] == snapshot_of(pause), "a snapshot taken now must equal the last change (snapshot = live)"
    commands_handed_mark(commands=[pause], now=pause.created_at)  # a restarted bridge handing it again
    assert len(told(pause)) == before + 1, "a command marked already keeps its first mark: nothing new to tell"


def test_a_mark_taken_back_is_told_too():
    pause = paused("HANDED_BACK")
    commands_handed_mark(commands=[pause], now=pause.created_at)
    commands_handed_unmark(command_pks=[pause.pk], now=pause.created_at)  # the link refused it: never handed over
    last = told(pause)[-1]
    assert last["handedAt"] is None, "the screens were told it was handed; they must be told it was not after all"
    assert last == snapshot_of(pause), "a snapshot taken now must equal the last change (snapshot = live)"
