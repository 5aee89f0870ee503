"""Review 50 (hostile, time): the step back the worker measures (`Bridge.note_stall` -> `Housekeeping.clock_put_back`)
and what housekeeping does with it (`deadlines_ahead._alarms_pull_back`), and what still tells a pump's orders apart
by `created_at` after a clock that ran ahead is put right. Each case is written as the services write it; the
judgements are the services' own, on the clock put right.
"""

import time
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from devices.models import Alarm, Command, InfusionSession
from devices.selectors import session_current
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.escalations import alarms_escalate
from devices.services.requests import infusion_cancel, infusion_request
from devices.services.sessions import infusion_start
from devices.snapshot_selectors import session_latest
from devices.states import AlarmPriority, AlarmSource, AlarmState, CommandKind, CommandState, SessionStatus
from devices.views.presenters import monitor_state
from realtime.bridge import housekeeping as housekeeping_module
from realtime.bridge.housekeeping import HEARD_AHEAD_EVERY_S, Housekeeping
from tests.devices.test_command_across_a_restart import published_and_acknowledged
from tests.devices.test_paused_infusion_running_again_by_itself import paused_by
from tests.factories import make_device, make_order, make_user
from tests.realtime.bridge.test_review49_moments_still_ahead import put_right
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

CONNECTED_LONG_AGO = timezone.now() - timedelta(hours=2)
AHEAD = timedelta(hours=1)
TWO_TIERS = {"ESCALATION_HIGH_S": [60.0, 120.0], "ESCALATION_TIER_WEBHOOKS": []}


def occlusion(device_id: str, *, at):
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                           source=AlarmSource.DEVICE, message="Line blocked", now=at)  # fmt: skip


def test_a_step_measured_is_kept_when_the_pull_back_that_would_use_it_fails(settings, monkeypatch):
    """Severity medium. The occlusion raised on a clock an hour ahead 100 s before it was put right, at tier 1; the
    worker measured the step (an hour). The tick that looks for moments ahead at once fails on the database (SQLite's
    "database is locked" under a burst of writes, a PostgreSQL failover: `OperationalError` is the whole tick's, the
    worker logs "housekeeping skipped"). `heard_ahead_pull_back` took the step before its first read and it is lost:
    the next look (HEARD_AHEAD_EVERY_S later) knows no step and takes the alarm's moments to now, review 49's ladder
    started again at the correction (tier 2, due 20 s after it, 120 s after; a 30 min tier up to 30 min late), and
    screens say the occlusion began at the correction."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, **TWO_TIERS}
    make_device("STEP_KEPT", has_presence=True)
    wrong = timezone.now() + AHEAD
    alarm = occlusion("STEP_KEPT", at=wrong - timedelta(seconds=100))
    assert alarms_escalate(now=wrong - timedelta(seconds=39)) == 1  # tier 1 at its 61 s, on that clock
    housekeeping = Housekeeping()
    housekeeping.clock_put_back(AHEAD)  # as the worker measures it
    real, failures = housekeeping_module.moments_ahead, iter([OperationalError("database is locked")])

    def locked_once(*, now):
        for failure in failures:
            raise failure
        return real(now=now)

    monkeypatch.setattr(housekeeping_module, "moments_ahead", locked_once)
    clock = time.monotonic()
    with pytest.raises(OperationalError):  # the worker catches it: "housekeeping skipped"
        housekeeping.tick(timezone.now(), connected_since=CONNECTED_LONG_AGO, clock=clock)
    housekeeping.tick(timezone.now(), connected_since=CONNECTED_LONG_AGO, clock=clock + HEARD_AHEAD_EVERY_S)
    alarm.refresh_from_db()
    assert alarm.raised_at <= timezone.now() - timedelta(seconds=99), (
        f"after a failed tick, the occlusion raised 100 s before the correction reads raised {alarm.raised_at:%H:%M:%S}"
        f" and alerted {alarm.alerted_at:%H:%M:%S} (now {timezone.now():%H:%M:%S}): its ladder started again"
    )


def test_a_clock_that_flaps_ahead_and_back_twice_does_not_make_an_alarm_look_an_hour_older(settings, clocks):
    """Severity medium. A broken NTP source (two servers an hour apart, the daemon stepping between them) takes the
    wall clock an hour ahead and back twice before housekeeping's next pull-back (the database away meanwhile: each
    housekeeping skipped, `OperationalError`). The worker sums the two steps back (two hours) and ignores the step
    forward between them (it cannot tell it from a suspend); an occlusion raised 2 s before the last correction, its
    moments an hour ahead, goes back two hours: every screen says it has lasted an hour (a nurse reckons an hour of a
    vasopressor or heparin missed), and each tier and its page fire at once. The largest error a moment can hold is
    the largest offset the wall clock had since the last pull-back, not the sum of the steps."""
    from realtime.bridge.worker import Bridge

    settings.PUMPSTREAM = {**settings.PUMPSTREAM, **TWO_TIERS}
    make_device("STEP_FLAPS", has_presence=True, last_seen_at=timezone.now())
    bridge = Bridge()

    def turn(*, wall_step_s: float) -> None:
        clocks.mono_s += 1.0
        clocks.wall_step_s = wall_step_s
        bridge.note_stall(clocks.monotonic())

    turn(wall_step_s=0.0)
    turn(wall_step_s=AHEAD.total_seconds())  # ahead: a step forward (looks like a suspend: nothing measured)
    turn(wall_step_s=0.0)  # back: an hour measured
    turn(wall_step_s=AHEAD.total_seconds())  # ahead again
    raised = clocks.now()  # on the clock an hour ahead
    occlusion("STEP_FLAPS", at=raised)
    truly_raised = raised - AHEAD
    turn(wall_step_s=0.0)  # back again: two hours summed
    bridge.housekeeping.tick(clocks.now(), connected_since=CONNECTED_LONG_AGO, clock=clocks.monotonic())
    alarm = Alarm.objects.get(device__device_id="STEP_FLAPS", type="occlusion")
    assert alarm.raised_at >= truly_raised - timedelta(seconds=5), (
        f"the occlusion raised {(clocks.now() - truly_raised).total_seconds():.0f} s ago reads raised "
        f"{(clocks.now() - alarm.raised_at).total_seconds() / 60:.0f} min ago, at tier {alarm.escalation_level}"
    )


FIRST = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 30, "planned_time_min": 15, "bolus_enabled": False}
SECOND = {"flow_rate_ml_min": 1.0, "planned_volume_ml": 30, "planned_time_min": 30, "bolus_enabled": False}


def test_the_monitor_shows_the_pumps_latest_order_after_the_clock_is_put_right():
    """Severity medium. The pump's first order was placed and cancelled while the clock ran ahead (its `created_at`
    an hour on: an ended order's moments are not brought back); after the correction the nurse placed the Heparin
    order, which ended (here cancelled; completed alike). `selectors.session_current` (the monitor page's session and
    its volume chart, `/api/devices/<id>/history/`) and `snapshot_selectors.session_latest` (whether the pump's own
    progress is shown) pick the pump's latest order by `created_at`: for the hour the monitor shows the first order
    (Saline) as the pump's last infusion, not the Heparin placed after it, the ordering review 49 took from `pk` for
    the bare answers."""
    make_device("LATEST_ORDER", has_presence=True)
    nurse = make_user("latest-order")
    first = infusion_start(device_id="LATEST_ORDER", order=make_order(drug="Saline 0.9%", **FIRST), user=nurse)
    infusion_cancel(infusion_id=first.infusion_id, user=nurse)
    InfusionSession.objects.filter(pk=first.pk).update(created_at=timezone.now() + AHEAD - timedelta(seconds=30))
    second = infusion_start(device_id="LATEST_ORDER", order=make_order(drug="Heparin", **SECOND), user=nurse)
    infusion_cancel(infusion_id=second.infusion_id, user=nurse)
    device = second.device
    shown = (monitor_state(device)["session"] or {}).get("infusionId")
    assert (session_current(device), session_latest(device), shown) == (second, second, second.infusion_id), (
        f"the monitor shows {shown} (the Saline, placed first) as the pump's last order, not the Heparin "
        f"{second.infusion_id} placed after it"
    )


@pytest.mark.parametrize("ahead", [timedelta(0), AHEAD], ids=["clock-right", "clock-put-right"])
def test_a_paused_infusion_the_pump_runs_by_itself_after_the_clock_is_put_right_stays_alarmed(
    django_capture_on_commit_callbacks, ahead
):
    """Severity high. While the clock ran ahead the nurse paused the Heparin and resumed it (her Resume's `created_at`
    an hour on: a settled command's moments are not brought back). After the correction she paused it again (a
    blood draw); the pump lost power and came back RUNNING it by itself. `restart_commands.resume_asked_since` finds a
    Resume "asked after the pause" by `created_at__gt=paused_at`: the old Resume, stamped an hour on, is taken for
    evidence that she resumed it, and `infusion_interrupted` is cleared ("as the Resume asked by ..."): the infusion
    she paused runs with no alarm at all, for the hour (review 25, finding 1 undone). The lost-Stop recall
    (`commands_lost_recall`, `_resumed_since`) reads the same Resume: a Stop the pump never carried out is not
    raised again."""
    capture, device_id = django_capture_on_commit_callbacks, "AHEAD_RESUME"
    session = paused_by(device_id, "ahead-resume", capture)
    nurse, named = make_user("ahead-resume-2"), {"infusionId": session.infusion_id}

    def asked(kind: CommandKind, key: str, reason: str = "") -> Command:
        """Her command, published and acknowledged by the broker."""
        command = infusion_request(device_id=device_id, kind=kind, infusion_id=session.infusion_id, user=nurse,
                                   reason=reason, idempotency_key=key)  # fmt: skip
        return published_and_acknowledged(device_id, command)

    resume = asked(CommandKind.RESUME_INFUSION, "r-ahead-resume")
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "A", "seq": 3, "uptime": 603_000},
                   3)], capture)  # fmt: skip
    assert Command.objects.get(pk=resume.pk).state == CommandState.DONE, "precondition: her Resume is done"
    wrong = timezone.now() + ahead  # the pause and the resume, as the clock ahead stamped them
    Command.objects.filter(session=session).update(created_at=wrong, published_at=wrong, state_changed_at=wrong)
    put_right()
    asked(CommandKind.PAUSE_INFUSION, "p2-ahead-resume", "blood draw")
    ingest([report(device_id, "status", {"status": "paused", **named, "bootId": "A", "seq": 4, "uptime": 610_000},
                   10)], capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, "precondition: paused again"
    # the pump loses power and comes back RUNNING what she paused; nobody resumed it
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 2_000},
                   60)], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: shown running ({session.status})"
    alarms = dict(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
                  .values_list("type", "message"))  # fmt: skip
    interrupted = Alarm.objects.filter(session=session, type="infusion_interrupted").order_by("-pk").first()
    assert "without anyone resuming it" in alarms.get("infusion_interrupted", ""), (
        f"the pump runs by itself the Heparin she paused after the correction; active alarms {alarms}; its "
        f"interruption {interrupted and interrupted.state} (cleared at {interrupted and interrupted.cleared_at})"
    )


def test_an_ended_order_the_pump_runs_after_its_stop_went_out_is_infusing_after_stop_after_the_clock_is_put_right():
    """Severity low. The pump's first order was cancelled while the clock ran ahead; its screen-clearing STOP never
    went out (the pump away: expired) and keeps its `created_at` an hour on. After the correction the Heparin order
    was cancelled too, and its STOP went out (the broker acknowledged it). The pump reports the Heparin infusing:
    `evidence.unordered_infusion_alarm` takes the pump's last STOP by `created_at` (the first order's, unpublished)
    and raises `infusing_without_order` ("an infusion the server did not order") where the rules say
    `infusing_after_stop` ("infusing after it was sent STOP: check it at the bedside"): the pump ignoring a STOP that
    went out is not named."""
    from devices.services.evidence import unordered_infusion_alarm

    make_device("AHEAD_STOP", has_presence=True)
    nurse = make_user("ahead-stop")
    first = infusion_start(device_id="AHEAD_STOP", order=make_order(**FIRST), user=nurse)
    infusion_cancel(infusion_id=first.infusion_id, user=nurse)
    wrong = timezone.now() + AHEAD - timedelta(seconds=30)
    InfusionSession.objects.filter(pk=first.pk).update(created_at=wrong)
    Command.objects.filter(session=first).update(created_at=wrong, state=CommandState.EXPIRED, ended_at=wrong)
    second = infusion_start(device_id="AHEAD_STOP", order=make_order(drug="Heparin", **SECOND), user=nurse)
    infusion_cancel(infusion_id=second.infusion_id, user=nurse)
    stop = Command.objects.get(session=second, kind=CommandKind.STOP_INFUSION)
    published_and_acknowledged("AHEAD_STOP", stop)
    with transaction.atomic():
        device = device_lock(device_id="AHEAD_STOP")
        raised = unordered_infusion_alarm(device=device, now=timezone.now(), session=InfusionSession.objects.get(
            pk=second.pk))  # fmt: skip
    assert raised == "infusing_after_stop", f"the pump runs the Heparin after its STOP went out: {raised}"
