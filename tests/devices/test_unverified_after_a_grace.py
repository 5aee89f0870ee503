"""Review 12: the original firmware's normal remote start with a bolus raised, and 20 ms later cleared, a medium
`parameters_unverified` alarm: its retained `bolus` report (evidence: the order runs, read-back unverified) comes
before its confirmation with the parameters as ordered (shared/fixtures/legacy-firmware.json). Every such start
notified every screen and ended a ward's silence for nothing. Now an order under way on evidence waits
EVIDENCE_CONFIRMATION_GRACE_S for its confirmation; the bridge's housekeeping raises `parameters_unverified` only if
none came by then (judged as of what the bridge has applied, held while its broker link is away)."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession, WardSilence
from devices.services.alarm_rules import alarm_resolve
from devices.services.sessions import infusion_start
from devices.services.silences import ward_silence
from devices.states import SessionStatus
from protocol import events
from realtime.bridge.housekeeping import Housekeeping
from tests.clinical.scenario import legacy_step, legacy_steps
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.ingest import ingest as apply
from tests.support.ingest import report

pytestmark = pytest.mark.django_db

GRACE_S = 5.0


def ingest(capture, recorded: dict, at: datetime) -> None:
    """One of the original firmware's recorded messages, received at `at`, applied as the bridge does."""
    apply([report("", "", recorded["payload"], topic=recorded["topic"], at=at)], capture)


def unverified(device_id: str) -> list[tuple[str, str]]:
    return list(Alarm.objects.filter(device__device_id=device_id, type="parameters_unverified")
                .values_list("priority", "state"))  # fmt: skip


def running_on_its_bolus_report(capture, device_id: str) -> datetime:
    """An order the original firmware received and reported its bolus of (running on evidence), unconfirmed: when."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    steps, now = legacy_steps("infusion", session.infusion_id, device_id), timezone.now()
    ingest(capture, legacy_step(steps, "/status", status="received_start_command"), now)
    ingest(capture, legacy_step(steps, "/bolus"), now)
    return now


@pytest.fixture
def grace(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "EVIDENCE_CONFIRMATION_GRACE_S": GRACE_S}


def test_the_original_firmwares_bolus_start_confirmed_as_ordered_raises_no_alarm(
    grace, django_capture_on_commit_callbacks, emitted
):
    ward = make_ward("w12")
    make_device("LEG_BOLUS", ward=ward)
    nurse = make_user("n12", ward=ward)
    session = infusion_start(device_id="LEG_BOLUS", order=make_order(), user=nurse)  # 2 mL/min, 30 mL, 15 min, 5 mL
    ward_silence(ward=ward, user=nurse, seconds=120, reason="handover")  # nothing sounding on the ward
    emitted.clear()
    steps, now = legacy_steps("infusion", session.infusion_id, "LEG_BOLUS"), timezone.now()
    capture = django_capture_on_commit_callbacks
    ingest(capture, legacy_step(steps, "/status", status="received_start_command"), now)
    ingest(capture, legacy_step(steps, "/bolus"), now + timedelta(milliseconds=10))
    assert InfusionSession.objects.get(pk=session.pk).read_back == "unverified"  # shown so until confirmed
    ingest(capture, legacy_step(steps, "/infusion"), now + timedelta(milliseconds=30))  # the confirmation, 20 ms later
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING and session.read_back == "match", (session.status, session.read_back)
    Housekeeping().tick(now + timedelta(seconds=GRACE_S + 1), connected_since=now - timedelta(hours=1))
    raised = list(Alarm.objects.filter(device__device_id="LEG_BOLUS").values_list("type", "priority", "state"))
    notified = [change.body for change in emitted if change.event == events.DEVICE_NOTIFICATION]
    assert raised == [], f"the firmware's normal start with a bolus, confirmed as ordered, raised {raised}"
    assert notified == [], f"... and notified every screen: {notified}"
    assert WardSilence.objects.get(ward=ward).ended_at is None, "... and ended the ward's silence"


def test_evidence_without_confirmation_raises_unverified_after_the_grace(grace, django_capture_on_commit_callbacks):
    now = running_on_its_bolus_report(django_capture_on_commit_callbacks, "LEG_NOCONF")
    housekeeping, connected = Housekeeping(), now - timedelta(hours=1)
    housekeeping.tick(now + timedelta(seconds=GRACE_S - 1), connected_since=connected)
    assert unverified("LEG_NOCONF") == [], "raised before the confirmation's grace was over"
    with django_capture_on_commit_callbacks(execute=True):
        housekeeping.tick(now + timedelta(seconds=GRACE_S + 1), connected_since=connected)
    assert unverified("LEG_NOCONF") == [("medium", "active")], "no confirmation came: its parameters are unverified"
    alarm = Alarm.objects.get(type="parameters_unverified")
    alarm_resolve(alarm_id=alarm.pk, user=make_user("noconf-nurse", is_staff=True), reason="checked_at_pump",
                  note="screen checked", alerts=alarm.alerts)  # fmt: skip
    housekeeping.tick(now + timedelta(seconds=GRACE_S + 30), connected_since=connected)
    assert unverified("LEG_NOCONF") == [("medium", "cleared")], "resolved by a person, it is not raised again"


def test_no_unverified_while_the_broker_link_is_away_or_settling(grace, django_capture_on_commit_callbacks):
    now = running_on_its_bolus_report(django_capture_on_commit_callbacks, "LEG_AWAY")
    later = now + timedelta(seconds=GRACE_S + 1)
    housekeeping = Housekeeping()
    housekeeping.tick(later, connected_since=None)  # no broker link: its confirmation may wait at the broker
    housekeeping.tick(later, connected_since=later - timedelta(seconds=1))  # back, within the reconnect grace
    assert unverified("LEG_AWAY") == [], "a confirmation still at the broker was taken for none"


# Review 13: an order the server had ended (interrupted by a restart before it confirmed, timed out) that the pump
# then reports running is an order running on evidence too: its read-back is unverified, so its rate is compared and
# its confirmation awaited; and the check pages past orders held for their pumps' unapplied messages.


def test_an_order_lost_to_a_restart_then_reported_running_unconfirmed_is_alarmed(
    grace, django_capture_on_commit_callbacks
):
    capture, device_id, now = django_capture_on_commit_callbacks, "LATE_UNV", timezone.now()
    make_device(device_id)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = infusion_start(device_id=device_id, order=make_order())
    InfusionSession.objects.filter(pk=session.pk).update(delivered_at=now)  # its START reached the pump
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=1))],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
    progress = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.1, "volumeRemainingMl": 29.9,
                "timeRemainingMin": 14.9, "elapsedTimeMin": 0.05, "progressPercent": 0.3,
                "infusionId": session.infusion_id, "bootId": "boot-2"}  # fmt: skip
    apply([report(device_id, "progress", progress, at=now + timedelta(seconds=2))], capture)
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING and session.confirmation is None, (session.status,)
    with capture(execute=True):
        Housekeeping().tick(now + timedelta(seconds=2 + GRACE_S + 1), connected_since=now - timedelta(hours=1))
    alarms = list(Alarm.objects.filter(device__device_id=device_id).values_list("type", "priority", "state"))
    assert ("parameters_unverified", "medium", "active") in alarms, (
        f"an order that never confirmed runs (read-back {session.read_back!r}) and nothing is alarmed: {alarms}"
    )


@pytest.mark.parametrize("late_from", ["interrupted", "timed_out"])
def test_an_order_running_late_at_ten_times_its_rate_is_a_mismatch(late_from, django_capture_on_commit_callbacks):
    """Worse: with `read_back` blank, `readback_progress_check` (unverified or mismatch only) never compares the
    late order's running rate with the order either: a pump infusing 20 mL/min for an order of 2 raises no
    `parameter_mismatch`. Interrupted: no alarm at all. Timed out: only `confirmed_late`, which a nurse resolves as
    "yes, it runs" without being told it runs at ten times the rate."""
    from devices.services.requests import infusion_time_out

    capture, device_id, now = django_capture_on_commit_callbacks, f"LATE_RATE_{late_from}", timezone.now()
    make_device(device_id)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = infusion_start(device_id=device_id, order=make_order())  # 2 mL/min
    InfusionSession.objects.filter(pk=session.pk).update(delivered_at=now)
    if late_from == "interrupted":
        apply([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=1))],
               capture)  # fmt: skip
    else:
        with capture(execute=True):
            infusion_time_out(infusion_id=session.infusion_id)
    assert InfusionSession.objects.get(pk=session.pk).status == late_from
    progress = {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 1.0, "volumeRemainingMl": 29.0,
                "timeRemainingMin": 1.45, "elapsedTimeMin": 0.05, "progressPercent": 3.3,
                "infusionId": session.infusion_id}  # fmt: skip
    for n in range(3):
        apply([report(device_id, "progress", progress, at=now + timedelta(seconds=2 + n))], capture)
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, session.status
    alarms = list(Alarm.objects.filter(device__device_id=device_id).values_list("type", "priority", "state"))
    assert ("parameter_mismatch", "high", "active") in alarms, (
        f"the pump runs 20 mL/min for an order of 2 (read-back {session.read_back!r}); alarms: {alarms}"
    )


def test_unverified_check_reaches_a_start_behind_a_page_of_held_ones(grace, django_capture_on_commit_callbacks):
    """`Housekeeping.unverified_starts` reads PER_TICK (20) oldest rows and `continue`s past the held ones (a pump
    whose messages wait unapplied in the bridge, or, for the scale-out leader, a pump of a slot not owned/settled:
    `silence_as_of` None) without a cursor: with 20 older held sessions, a 21st whose pump is heard normally is
    never reached while they are held, however many ticks run. `confirmation_timeouts` has `starts_after` for this
    very reason ("so a start is reached however many before it are held"); the new check copied the hold, not
    the cursor."""
    from realtime.bridge.housekeeping import PER_TICK

    now = timezone.now()
    since = now - timedelta(seconds=60)
    held = set()
    for n in range(PER_TICK + 1):
        device_id = f"HOL_{n:02d}"
        make_device(device_id)
        session = infusion_start(device_id=device_id, order=make_order())
        InfusionSession.objects.filter(pk=session.pk).update(
            status=SessionStatus.RUNNING, read_back="unverified", running_evidence="bolus",
            status_changed_at=since + timedelta(milliseconds=n), delivered_at=since)  # fmt: skip
        if n < PER_TICK:
            held.add(device_id)
    housekeeping = Housekeeping()
    # the 20 older ones: their messages wait in the bridge since just after their evidence (their confirmation may
    # be among them): held, rightly; HOL_20's pump is heard and applied normally
    housekeeping.waiting_since = lambda device_id: since + timedelta(seconds=1) if device_id in held else None
    with django_capture_on_commit_callbacks(execute=True):
        for tick in range(10):
            housekeeping.tick(now + timedelta(seconds=tick), connected_since=now - timedelta(hours=1))
    raised = list(Alarm.objects.filter(type="parameters_unverified").values_list("device__device_id", flat=True))
    assert raised == ["HOL_20"], f"HOL_20 waited 60 s past its grace unconfirmed and was never reached: {raised}"
