"""One silence, one `communication_lost` (contract: "at most one per silence"; docs/clinical-rules.md, "Silence"):
what ends the alarm and what the silence check measures from are the same events, so nothing clears it that the next
housekeeping tick raises again, and no other session's move clears it (review 19, findings 4, 5, 9).

- A status that moves nothing (a `running` heartbeat, the original firmware's with its `progress` summary or one
  naming the infusion) leaves the alarm active: only progress stored as the pump's latest, or a move of the session,
  ends a silence. Progress about another infusion than the one on the pump (not shown) ends none either.
- A pump infusing without an order is watched for silence while an order waits for it (a pending order is not on the
  pump), and that alarm belongs to no session: the order's end (cancelled, timed out) does not clear it; the pump
  reporting its own infusion ended does.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeviceEvent
from devices.services.requests import infusion_cancel, infusion_time_out
from devices.services.sessions import infusion_start
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device, make_order, make_ward
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip
RUNNING = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 6.0, "volumeRemainingMl": 24.0,
           "timeRemainingMin": 12.0, "progressPercent": 20}  # fmt: skip


def lost(device_id: str):
    return Alarm.objects.filter(device__device_id=device_id, type="communication_lost").order_by("pk")


def active(device_id: str) -> list[str]:
    return sorted(Alarm.objects.filter(device__device_id=device_id, state="active").values_list("type", flat=True))


def cleared_why(alarm: Alarm) -> list:
    events = DeviceEvent.objects.filter(kind="alarm.cleared", payload__alarmId=alarm.pk)
    return list(events.values_list("payload", flat=True))


def heartbeat(infusion_id: str | None, beat: int) -> dict:
    """A `running` status repeating what the pump does: the original firmware's (its progress summary, no id), or
    one naming the infusion."""
    if infusion_id is None:
        return {"status": "running", "timestamp": 70000 + 3000 * beat, "progress": {"deliveredVol": 6.0}}
    return {"status": "running", "infusionId": infusion_id, "currentInfusion": {"infusionId": infusion_id}}


@pytest.mark.parametrize("named", [False, True], ids=["legacy-heartbeat", "named-heartbeat"])
def test_a_running_status_heartbeat_does_not_clear_and_re_raise_the_silence_alarm_at_every_beat(
    named, settings, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    timeout = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
    device_id = f"FLAP_{int(named)}"
    make_device(device_id, ward=make_ward("flap"))  # the original firmware: no presence, QoS 0
    session = confirmed_order(device_id, parameters=READ_BACK)
    infusion_id = session.infusion_id if named else None
    start = timezone.now()
    body = {**RUNNING, "timestamp": 65510, **({"infusionId": infusion_id} if named else {})}
    ingest([report(device_id, "progress", body, at=start)], capture)
    beats = []
    for beat in range(3):  # its progress stops arriving; its status heartbeat, every few seconds, does not
        at = start + timedelta(seconds=timeout + 2 + 3 * beat)
        Housekeeping().silent_sessions(at)
        beats.append(list(lost(device_id).values_list("state", flat=True)))
        ingest([report(device_id, "status", {"deviceId": device_id, **heartbeat(infusion_id, beat)},
                       at=at + timedelta(seconds=1))], capture)  # fmt: skip
    Housekeeping().silent_sessions(start + timedelta(seconds=timeout + 12))
    alarms = list(lost(device_id).values_list("state", "alerts"))
    assert len(alarms) == 1 and alarms[0][0] == "active", (
        f"one silence of the pump's progress ({timeout + 12:.0f} s): communication_lost after each tick {beats}, "
        f"and in the end {alarms} (state, alerts): cleared by every running heartbeat and raised anew at the next tick"
    )
    ingest([report(device_id, "progress", {**body, "deliveredVolumeMl": 7.0},
                   at=start + timedelta(seconds=timeout + 13))], capture)  # fmt: skip
    assert lost(device_id).get().state == "cleared", "the pump's progress, arriving again, ends the silence"


@pytest.mark.parametrize("path", ["bulk", "one-message", "one-message-fallback"])
def test_progress_about_another_infusion_does_not_end_the_silence_of_the_one_on_the_pump(
    path, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Progress naming an infusion the pump ended before (a late copy) is heard, never shown as the running order's:
    its figures stay frozen, so its silence goes on (the check measures from the progress shown)."""
    capture = django_capture_on_commit_callbacks
    timeout = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
    device_id = f"LATE_{path.replace('-', '_').upper()}"
    make_device(device_id, ward=make_ward("late"), has_presence=True, last_seen_at=timezone.now())
    old = confirmed_order(device_id, parameters=READ_BACK)
    start = timezone.now()
    ingest([report(device_id, "status", {"status": "completed", "infusionId": old.infusion_id}, at=start)], capture)
    session = confirmed_order(device_id, parameters=READ_BACK)
    ingest([report(device_id, "progress", {**RUNNING, "infusionId": session.infusion_id}, at=start)], capture)
    silent_at = start + timedelta(seconds=timeout + 2)
    Housekeeping().silent_sessions(silent_at)
    assert lost(device_id).get().state == "active", "the running order's pump is silent: alarmed"
    if path == "one-message-fallback":
        monkeypatch.setattr("realtime.bridge.batch.routine_progress_ingest", _bulk_path_broken)
    status = "paused" if path == "one-message" else "running"
    copy = {**RUNNING, "status": status, "infusionId": old.infusion_id}
    ingest([report(device_id, "progress", copy, at=silent_at + timedelta(seconds=1))], capture)
    Housekeeping().silent_sessions(silent_at + timedelta(seconds=2))
    alarms = list(lost(device_id).values_list("state", flat=True))
    assert alarms == ["active"], (
        f"progress about {old.infusion_id} (ended) while {session.infusion_id} runs silent ({path}): "
        f"communication_lost {alarms}, cleared by {cleared_why(lost(device_id).first())}"
    )


def _bulk_path_broken(items):
    raise RuntimeError("bulk path failed")


def test_a_pump_infusing_without_an_order_is_checked_for_silence_while_an_order_waits(
    settings, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    timeout = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
    make_device("BUSY_SILENT", ward=make_ward("busy"), has_presence=True, last_seen_at=timezone.now())
    start = timezone.now()
    ingest([report("BUSY_SILENT", "progress", RUNNING, at=start)], capture)  # its own infusion: infusing_without_order
    infusion_start(device_id="BUSY_SILENT", order=make_order(drug="Heparin"))  # an order waits beside it
    Housekeeping().silent_sessions(start + timedelta(seconds=timeout + 5))
    now_active = active("BUSY_SILENT")
    assert "communication_lost" in now_active, (
        f"the pump infuses without an order and has sent nothing for {timeout + 5:.0f} s; an order of Heparin waits "
        f"for it: active alarms {now_active}, no communication_lost (without the waiting order it is raised)"
    )
    assert lost("BUSY_SILENT").get().session is None, "the silence is the pump's own infusion's, not the order's"


@pytest.mark.parametrize("raised", ["before-the-order", "while-it-waits"])
@pytest.mark.parametrize("end", ["cancelled", "timed_out"])
def test_a_waiting_order_ending_does_not_clear_the_silence_alarm_of_the_pumps_own_infusion(
    raised, end, settings, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    timeout = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
    device_id = f"BUSY_{end.upper()}_{raised[0].upper()}"
    make_device(device_id, ward=make_ward("busy"), has_presence=True, last_seen_at=timezone.now())
    start = timezone.now() - timedelta(seconds=timeout + 5)
    ingest([report(device_id, "progress", RUNNING, at=start)], capture)
    if raised == "before-the-order":
        Housekeeping().silent_sessions(timezone.now())
    session = infusion_start(device_id=device_id, order=make_order(drug="Heparin"))
    if raised == "while-it-waits":
        Housekeeping().silent_sessions(timezone.now())
    alarm = lost(device_id).get()
    assert alarm.state == "active", "the silent pump infusing without an order is alarmed (as before)"
    if end == "cancelled":
        infusion_cancel(infusion_id=session.infusion_id, reason="wrong pump")
    else:
        infusion_time_out(infusion_id=session.infusion_id)
    alarm.refresh_from_db()
    assert alarm.state == "active", (
        f"the pump is as silent as before; an order that never reached it ending {end} cleared its "
        f"communication_lost ({cleared_why(alarm)})"
    )
    Housekeeping().silent_sessions(timezone.now() + timedelta(seconds=1))
    assert lost(device_id).count() == 1, "one silence, one alarm"


@pytest.mark.parametrize(
    "device_id,kind,body",
    [("OWN_STOPPED", "status", {"status": "stopped"}), ("OWN_IDLE", "status", {"status": "idle"}),
     ("OWN_MANUAL_STOP", "actions", {"action": "MANUAL_STOP"})],
)  # fmt: skip
def test_the_silence_of_a_pumps_own_infusion_ends_when_the_pump_reports_it_ended(
    device_id, kind, body, settings, django_capture_on_commit_callbacks
):
    """As a running order's silence ends with the order, the silence of the pump's own infusion ends when the pump
    reports it ended (its `infusing_without_order` clears then too); a `running` heartbeat does not end it."""
    capture = django_capture_on_commit_callbacks
    timeout = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
    make_device(device_id, ward=make_ward("own"), has_presence=True, last_seen_at=timezone.now())
    start = timezone.now() - timedelta(seconds=timeout + 5)
    ingest([report(device_id, "progress", RUNNING, at=start)], capture)
    Housekeeping().silent_sessions(timezone.now())
    ingest([report(device_id, "status", {"status": "running"})], capture)
    assert active(device_id) == ["communication_lost", "infusing_without_order"], "a heartbeat ends no silence"
    ingest([report(device_id, kind, body, at_s=1)], capture)
    assert active(device_id) == [], (
        f"the pump reports its own infusion ended ({body}): still active {active(device_id)}, saying it infuses"
    )
