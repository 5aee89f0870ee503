"""When an unconfirmed start times out: CONFIRMATION_TIMEOUT_S after its START was published to the pump (the broker
acknowledged it), not after the order was created; and every overdue start is reached, however many are held.
A START's late PUBACK neither fails it (its order is pending, the broker may deliver it) nor lengthens that time.

Suspicion 3, confirmed: an order placed just before a broker outage was published when the link came back, and
timed out as soon as the reconnect grace ended (the pump had 15 s of its 30, as little as 5 s before the START's
own `expiresAt`), sending the STOP that clears the pump's confirm screen while a nurse stood at it.
Suspicion 4, confirmed: housekeeping read the 100 oldest overdue starts each tick; while those were held (a slot
not settled, the pump's messages waiting in the bridge), a newer start on a settled pump was never reached.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Command, Device, InfusionSession
from devices.services.changes import device_lock
from devices.services.commands import command_queue, commands_settle
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from realtime.bridge.housekeeping import PER_TICK, Housekeeping
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order, make_ward
from tests.support.links import RecordingLink

pytestmark = pytest.mark.django_db


def start_published(outbox: CommandOutbox, at) -> None:
    """The outbox publishes the queued START at `at` and the broker acknowledges it."""
    outbox.tick(at)
    for mid in list(outbox.in_flight):
        outbox.acked.put(mid)
    outbox.settle_acks(at)


def status_of(session: InfusionSession) -> str:
    return InfusionSession.objects.get(pk=session.pk).status


def test_a_start_published_late_after_an_outage_gets_its_whole_confirmation_time(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "CONFIRMATION_TIMEOUT_S": 30.0, "RECONNECT_GRACE_S": 15.0}
    make_device("LATE_START")
    session = infusion_start(device_id="LATE_START", order=make_order())
    created = session.created_at
    back = created + timedelta(seconds=20)  # the broker link returns 20 s after the order was placed
    outbox = CommandOutbox(RecordingLink())
    start_published(outbox, back)
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    assert (start.state, start.sent_at) == (CommandState.SENT, back)
    housekeeping = Housekeeping()
    housekeeping.tick(created + timedelta(seconds=36), connected_since=back)  # 16 s after it reached the pump
    assert status_of(session) == SessionStatus.PENDING, (
        "the start timed out 16 s after its START reached the pump (36 s after the order): the nurse had 16 s of "
        "the 30 s confirmation time, and the STOP that follows clears the pump's confirm screen"
    )
    assert outbox.link.published[0]["expiresAt"] == (back + timedelta(seconds=40)).isoformat(), (
        "the pump must be told the START's deadline from its publication (confirmation time + 10 s)"
    )
    start.refresh_from_db()
    assert start.expires_at == back + timedelta(seconds=40), "the START's own deadline runs from its publication"
    housekeeping.tick(back + timedelta(seconds=31), connected_since=back)
    assert status_of(session) == SessionStatus.TIMED_OUT, "30 s after its publication it times out"


def test_a_start_never_published_times_out_from_the_order_as_before(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "CONFIRMATION_TIMEOUT_S": 30.0, "RECONNECT_GRACE_S": 15.0}
    make_device("UNSENT_START")
    session = infusion_start(device_id="UNSENT_START", order=make_order())
    long_ago = session.created_at - timedelta(hours=1)
    Housekeeping().tick(session.created_at + timedelta(seconds=31), connected_since=long_ago)
    assert status_of(session) == SessionStatus.TIMED_OUT


def test_a_start_is_reached_however_many_older_ones_are_held(settings):
    timeout = settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"]
    now, ward = timezone.now(), make_ward()
    placed = now - timedelta(seconds=timeout + 60)
    held = Device.objects.bulk_create(Device(device_id=f"HELD{index:04d}", ward=ward) for index in range(PER_TICK + 1))
    InfusionSession.objects.bulk_create(
        InfusionSession(device=device, status=SessionStatus.PENDING, flow_rate_ml_min=2, planned_volume_ml=30,
                        planned_time_min=15, created_at=placed, status_changed_at=placed)
        for device in held
    )  # fmt: skip
    make_device("FREE", ward=ward)
    newer = infusion_start(device_id="FREE", order=make_order())
    InfusionSession.objects.filter(pk=newer.pk).update(created_at=now - timedelta(seconds=timeout + 5))
    housekeeping = Housekeeping()
    # The held pumps' messages wait unapplied in the bridge (a slot not settled says the same: not now).
    housekeeping.waiting_since = lambda device_id: placed + timedelta(seconds=1) if device_id != "FREE" else None
    for tick in range(5):
        housekeeping.confirmation_timeouts(now + timedelta(seconds=tick / 2))
    assert status_of(newer) == SessionStatus.TIMED_OUT, (
        f"the start on FREE, overdue by 5 s, was never reached in 5 ticks behind {PER_TICK + 1} older held starts"
    )
    assert not InfusionSession.objects.filter(device__in=held).exclude(status=SessionStatus.PENDING).exists()


# Review 3: a START whose PUBACK came after COMMAND_ACK_TIMEOUT_S was failed, though the broker may deliver it (QoS 1)
# and its order stayed pending: the pump then ran an order whose START the monitor showed "FAILED: act at the pump".


def test_a_start_waits_for_a_late_puback_and_its_order_still_times_out_from_its_publication(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "CONFIRMATION_TIMEOUT_S": 30.0, "COMMAND_ACK_TIMEOUT_S": 10.0}
    make_device("SLOW_ACK")
    session = infusion_start(device_id="SLOW_ACK", order=make_order())
    published = session.created_at
    outbox = CommandOutbox(RecordingLink())
    outbox.tick(published)
    outbox.tick(published + timedelta(seconds=11))
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    assert start.state == CommandState.QUEUED, (
        f"the START ended {start.state} ({start.error}) 11 s after its publication, though the broker may still "
        "deliver it and its order is pending"
    )
    for mid in list(outbox.in_flight):
        outbox.acked.put(mid)
    outbox.settle_acks(published + timedelta(seconds=20))  # the PUBACK, 20 s late
    assert Command.objects.get(pk=start.pk).state == CommandState.SENT
    Housekeeping().tick(published + timedelta(seconds=31), connected_since=published - timedelta(hours=1))
    assert status_of(session) == SessionStatus.TIMED_OUT, (
        "the order must time out 30 s after its START's publication (the deadline the pump was told), not 30 s "
        "after a late PUBACK"
    )


def test_a_start_confirmed_before_its_late_puback_ends_done(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "COMMAND_ACK_TIMEOUT_S": 10.0}
    make_device("ACK_AFTER_CONFIRM")
    session = infusion_start(device_id="ACK_AFTER_CONFIRM", order=make_order())
    outbox = CommandOutbox(RecordingLink())
    outbox.tick(session.created_at)
    outbox.tick(session.created_at + timedelta(seconds=11))
    with transaction.atomic():
        device = device_lock(device_id="ACK_AFTER_CONFIRM")
        infusion_confirm(device=device, infusion_id=session.infusion_id, confirmed=True, parameters=None,
                         confirmation={"confirmed": True})  # fmt: skip
        commands_settle(device=device, kinds=(CommandKind.START_INFUSION,), to=CommandState.DONE,
                        now=timezone.now(), session=session)  # fmt: skip
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    assert (status_of(session), start.state) == (SessionStatus.RUNNING, CommandState.DONE), (
        f"the pump runs the order, yet its START is {start.state} ({start.error})"
    )


def test_a_stop_not_acknowledged_in_time_still_fails_at_once(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "COMMAND_ACK_TIMEOUT_S": 10.0}
    make_device("STOP_NO_ACK")
    now = timezone.now()
    with transaction.atomic():
        payload = {"reason": "stopped by user", "emergency": False, "infusionId": None}
        stop = command_queue(device=device_lock(device_id="STOP_NO_ACK"), kind=CommandKind.STOP_INFUSION,
                             payload=payload, now=now)  # fmt: skip
    outbox = CommandOutbox(RecordingLink())
    outbox.tick(now)
    outbox.tick(now + timedelta(seconds=10))
    assert Command.objects.get(pk=stop.pk).state == CommandState.FAILED, "a person must act at the pump at once"
