"""The bridge stalled (SIGSTOP, a frozen VM, a long GC pause) while its pumps kept reporting: on waking, its loop
ran housekeeping before the link's thread had read what waited at the broker (`inbox.get` returned at once, empty),
and a pump reporting every second was alarmed `communication_lost` "No progress from the pump for 31 s while
infusing", cleared in the same second by its waiting progress; the monitor announced it, the pump's log keeps it
(review 28, seen twice in the walk with the bridge stopped 30 s and 58 s).

Driven here with the bridge's own objects, its clocks moved on as a stopped process finds them, nothing of the pumps'
in its inbox until the link's thread reads it. A pump truly silent is still alarmed, once the reconnect grace after
the stall has passed (`worker.Bridge.note_stall`).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeviceEvent
from realtime.bridge.worker import Bridge
from tests.factories import make_device, make_ward
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

GRACE_S = 2.0
TURN_S = 0.5  # the clocks' move between two turns after the stall: far below a stall


def progress(device_id: str, infusion_id: str, at, delivered_ml: float):
    return report(device_id, "progress", {"status": "running", "infusionId": infusion_id, "flowRate": 2.0,
                                          "deliveredVolumeMl": delivered_ml, "volumeRemainingMl": 30 - delivered_ml,
                                          "timeRemainingMin": 10.0, "progressPercent": 20}, at=at)  # fmt: skip


def lost(device_id: str) -> list[str]:
    alarms = Alarm.objects.filter(device__device_id=device_id, type="communication_lost")
    return list(alarms.values_list("state", flat=True))


@pytest.mark.parametrize("stall_s", [31.0, 58.0])
def test_a_pump_that_kept_reporting_through_a_stall_of_the_bridge_is_not_alarmed_silent(
    stall_s, clocks, settings, django_capture_on_commit_callbacks
):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 10.0, "RECONNECT_GRACE_S": GRACE_S}
    ward = make_ward("stall")
    sessions = {}
    for device_id in ("REPORTING", "SILENT"):
        make_device(device_id, ward=ward, has_presence=True, last_seen_at=timezone.now())
        sessions[device_id] = confirmed_order(device_id).infusion_id
        ingest([progress(device_id, sessions[device_id], timezone.now(), 6.0)], django_capture_on_commit_callbacks)
    bridge = Bridge()
    bridge.link.connected_since = timezone.now() - timedelta(hours=1)  # the broker link held long since
    bridge.step()  # a turn before the stall: both pumps just heard

    clocks.mono_s = stall_s  # stopped: both pumps went on (REPORTING every second), their messages at the broker
    bridge.step()  # the first turn on waking: the link's thread has read nothing yet
    assert lost("REPORTING") == [], (
        f"on waking from a {stall_s:.0f} s stall the bridge alarmed communication_lost on a pump whose progress of "
        "every second waited at the broker, unread by its link's thread"
    )
    assert lost("SILENT") == [], "held for the reconnect grace after the stall, as after a reconnection"

    delivered = 6.0
    woke_at = bridge.housekeeping.resumed_clock  # the bridge's own monotonic clock on waking (the stall noted)
    assert woke_at is not None, "the stall went unnoticed"
    while not lost("SILENT"):
        assert clocks.mono_s < stall_s + GRACE_S + 4 * TURN_S, "the silent pump was never alarmed after the stall"
        delivered += 0.1
        bridge.inbox.put(progress("REPORTING", sessions["REPORTING"], clocks.now(), delivered))  # read at last
        bridge.step()
        judged_by = clocks.monotonic()  # the alarming turn's clock was at most this
        clocks.mono_s += TURN_S
    # on the bridge's clock, the test's turns and the real time they took (a loaded machine: 1.5 s of turns
    # took over 0.5 s, and the turns alone undercounted it)
    alarmed_after_s = judged_by - woke_at
    assert GRACE_S <= alarmed_after_s, f"the silent pump was judged {alarmed_after_s:.1f} s after the stall"
    assert lost("SILENT") == ["active"] and lost("REPORTING") == [], "the truly silent pump alone is alarmed"
    logged = DeviceEvent.objects.filter(device__device_id="REPORTING", kind__startswith="alarm.raised",
                                        payload__type="communication_lost")  # fmt: skip
    assert not logged.exists(), "nothing false left in the reporting pump's event log"


def test_after_a_stall_the_bridge_tells_no_one_it_applied_what_it_has_not_read(clocks, settings):
    """With bridges sharing the pumps, the leader judges a slot's pumps as of how far its owner applied what it
    received (`slots.SlotLinks.applied_until`): an owner waking from a stall, its inbox empty for its link's thread
    has read nothing yet, must not say "applied until now" within the grace."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": 10.0, "RECONNECT_GRACE_S": GRACE_S}
    bridge, told = Bridge(), []
    bridge.link.applied_until = lambda moment, clock: told.append(moment)
    bridge.step()
    assert len(told) == 1, "an idle bridge applied everything it received"
    clocks.mono_s = 31.0
    bridge.step()
    bridge.step()
    assert told[1:] == [], f"told within the grace after the stall: {told[1:]}"
    clocks.mono_s += GRACE_S
    bridge.step()
    assert told[-1] >= told[0] + timedelta(seconds=31 + GRACE_S), "told again once the grace is over"
