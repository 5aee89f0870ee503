"""Daphne's deadline keeper (`realtime/deadlines.py`) decides a command was "never sent" from a row it read
before it takes the pump's lock: `commands_expire_unsent` reads (pk, state, published_at), then `_end_overdue` picks
`expired` for `published_at` None and `command_advance` only checks that queued -> expired is legal. The keeper runs
exactly while the bridge's heartbeat is stale: a bridge that is alive but slow (a long batch, a lock wait, a stall
between its publish and its record, `outbox._publish`), whose tick took the command before its deadline, publishes
it and records `published_at` between the keeper's read and its lock. The command is then ended "EXPIRED: never
reached the pump" ("expired before it could be sent") though it was handed to the broker; the bridge's PUBACK can no
longer move it (expired -> sent is illegal), and when the pump carries it out (it may: the PUBLISH left before
`expiresAt`), the session moves "paused at the pump" with nobody named: the monitor reads
"Pause by nurse: EXPIRED: never reached the pump" beside "Paused - paused at the pump". The lie review 22 finding 4
removed for a late PUBACK, made again by a second process's stale read. (Review 24, finding 4; the interleaving is
forced where the keeper takes the pump's lock, `commands.device_lock`, which the fix no longer reaches through
`command_advance`: the bridge records the publication just before the keeper holds the lock.)"""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Command, InfusionSession
from devices.services import commands as command_service
from devices.services.changes import device_lock
from devices.services.publication import command_published
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState
from realtime.deadlines import deadlines_keep
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def test_a_command_the_bridge_publishes_while_daphne_ends_it_is_never_called_never_sent(
    django_capture_on_commit_callbacks,
):
    device_id = "KEEPER_RACE"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    pause = infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=make_user("nurse-keeper-race"), reason="line check")  # fmt: skip
    deadline = timezone.now() - timedelta(seconds=3)  # past its deadline; no bridge heartbeat: the keeper acts
    Command.objects.filter(pk=pause.pk).update(expires_at=deadline)
    original_lock = command_service.device_lock
    recorded = []

    def bridge_records_first(**kwargs):
        # the slow bridge's outbox: its tick took the Pause before the deadline, published it, and records that now,
        # after the keeper read the row (published_at None) and before the keeper takes the pump's lock
        if not recorded:
            with transaction.atomic():
                device_lock(device_id=device_id)
                command_published(command=Command.objects.get(pk=pause.pk), now=deadline - timedelta(seconds=1))
            recorded.append(pause.pk)
        return original_lock(**kwargs)

    with mock.patch.object(command_service, "device_lock", side_effect=bridge_records_first):
        deadlines_keep()
    assert recorded, "precondition: the keeper took the pump's lock to end the Pause"
    pause = Command.objects.get(pk=pause.pk)
    assert pause.published_at is not None, "precondition: the bridge recorded the publication"
    assert pause.state == CommandState.QUEUED, (
        f"Daphne ended a Pause the bridge had handed to the broker ({pause.state}: {pause.error}): a published command "
        f"is the bridge's to end, Daphne ends only those never published"
    )
    # the broker delivers it: the pump pauses, as the nurse asked, within the deadline's allowance
    ingest([report(device_id, "status", {"status": "paused", "infusionId": session.infusion_id}, 0)],
           django_capture_on_commit_callbacks)  # fmt: skip
    pause = Command.objects.get(pk=pause.pk)
    session = InfusionSession.objects.get(pk=session.pk)
    shown = (f"command {pause.state} ({pause.error}), published_at {pause.published_at}; session {session.status} "
             f"'{session.status_reason}'")  # fmt: skip
    assert pause.state != CommandState.EXPIRED, (
        f"a Pause handed to the broker before its deadline was ended by Daphne 'EXPIRED: never reached the pump' from "
        f"a row read before the bridge recorded its publication, and the pump's pause is then the pump's own: {shown}"
    )
    assert pause.state == CommandState.DONE and "remotely by nurse-keeper-race" in session.status_reason, (
        f"the pump paused as the nurse asked, yet the record does not say so: {shown}"
    )
