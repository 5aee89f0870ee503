"""Daphne ends a command never sent past its deadline while no bridge reports, raising `command_not_carried_out`
(review 22, finding 3): the bridge's housekeeping, which does it otherwise, may be away for good (a crash loop)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Command
from devices.services.publication import command_published
from devices.services.records import bridge_heartbeat
from devices.services.requests import infusion_request
from devices.states import AlarmState, CommandKind, CommandState
from realtime.deadlines import deadlines_keep
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order

pytestmark = pytest.mark.django_db


def stop_past_its_deadline(device_id: str, *, late_s: float = 3.0) -> Command:
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=make_user(f"nurse-{device_id}"))  # fmt: skip
    Command.objects.filter(pk=stop.pk).update(expires_at=timezone.now() - timedelta(seconds=late_s))
    return Command.objects.get(pk=stop.pk)


def test_a_stop_never_sent_past_its_deadline_expires_and_alarms_while_no_bridge_reports():
    stop = stop_past_its_deadline("DL_AWAY")
    assert deadlines_keep() == 1
    stop.refresh_from_db()
    assert stop.state == CommandState.EXPIRED, f"the Stop past its deadline is {stop.state}"
    alarm = Alarm.objects.filter(device__device_id="DL_AWAY", type="command_not_carried_out",
                                 state=AlarmState.ACTIVE).first()  # fmt: skip
    assert alarm is not None and alarm.priority == "high", "no alarm sends the nurse to the pump"


def test_nothing_is_ended_by_daphne_while_a_bridge_reports():
    stop = stop_past_its_deadline("DL_BRIDGE")
    bridge_heartbeat(broker_connected=False)  # alive, its broker lost: its own housekeeping ends the command
    assert deadlines_keep() == 0
    stop.refresh_from_db()
    assert stop.state == CommandState.QUEUED


def test_a_published_command_or_one_just_past_its_deadline_is_left_to_the_bridge():
    published = stop_past_its_deadline("DL_PUBLISHED")
    command_published(command=published, now=timezone.now())  # the broker may hold it: only the bridge can tell
    just = stop_past_its_deadline("DL_JUST", late_s=0.5)  # the bridge's housekeeping may be on its way
    assert deadlines_keep() == 0
    assert [Command.objects.get(pk=c.pk).state for c in (published, just)] == [CommandState.QUEUED] * 2
