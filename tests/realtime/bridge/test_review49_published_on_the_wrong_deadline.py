"""Review 49 (hostile, time): a command asked while the server's clock ran ahead and still queued when it is put right
(the broker away meanwhile) is published at the bridge's first turn after the correction with the wrong clock's
deadline: the worker runs the outbox before housekeeping in a turn (`Bridge.maybe_tick`), and housekeeping's pull-back
(`deadlines_ahead._commands_pull_back`, at the tick after the step is seen) comes after paho has it. The pump is told
`expiresAt` an hour on and the broker holds the message that long (its MQTT expiry is `expires_at - now`), while the
server ends the command 30 s after the correction (`command_not_carried_out`): a pump back within the hour still gets
a Stop the server, and the nurse, took for failed.

Driven with the bridge's own objects as `test_silence_after_a_clock_step.py` drives them (the wall clock stepped, the
monotonic clock on a turn at a time), the broker link a `RecordingLink`.
"""

from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from devices.services.requests import infusion_request
from devices.states import CommandKind
from realtime.bridge.worker import Bridge
from tests.factories import make_device, make_user
from tests.support.ingest import started_order
from tests.support.links import RecordingLink
from tests.support.worker_clocks import WorkerClocks

pytestmark = pytest.mark.django_db

TURN_S = 0.5
HOUR_S = 3600.0


def turn(bridge: Bridge, clocks: WorkerClocks, *, wall_step_s: float) -> None:
    clocks.mono_s += TURN_S
    clocks.wall_step_s = wall_step_s
    bridge.maybe_tick()


def test_a_stop_still_queued_when_the_clock_is_put_right_goes_out_with_a_deadline_of_now(clocks):
    make_device("AHEAD_QUEUED", has_presence=True)
    session = started_order("AHEAD_QUEUED", drug="Heparin")
    bridge = Bridge()
    bridge.link.connected_since = timezone.now() - timedelta(hours=2)
    link = bridge.outbox.link = RecordingLink()
    link.connected.clear()  # the broker away
    for _ in range(4):
        turn(bridge, clocks, wall_step_s=HOUR_S)  # the wall clock an hour ahead
    stop = infusion_request(device_id="AHEAD_QUEUED", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=make_user("ahead-queued"), now=clocks.now())  # fmt: skip
    turn(bridge, clocks, wall_step_s=HOUR_S)
    link.connected.set()  # the broker back as the clock is put right
    for _ in range(4):
        turn(bridge, clocks, wall_step_s=0.0)
    told = [body for body in link.published if body.get("commandId") == str(stop.command_id)]
    assert told, "precondition: the Stop was published once the broker was back"
    expires_at = datetime.fromisoformat(told[0]["expiresAt"])
    latest = clocks.now() + timedelta(seconds=settings.PUMPSTREAM["COMMAND_EXPIRY_S"])
    assert expires_at <= latest, (
        f"published after the clock was put right, the Stop tells the pump it holds until {expires_at:%H:%M:%S} "
        f"({(expires_at - clocks.now()).total_seconds():.0f} s on, the broker keeping it as long), while the server "
        f"ends it {settings.PUMPSTREAM['COMMAND_EXPIRY_S']:g} s after the correction"
    )
