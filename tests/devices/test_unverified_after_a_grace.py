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
from tests.support.ingest import confirmed_order, report
from tests.support.ingest import ingest as apply

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
            unconfirmed_since=since + timedelta(milliseconds=n), delivered_at=since)  # fmt: skip
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


# Review 14 (finding 4): a restart voids what a confirmation verified, so an order the pump resumes after one waits
# for a new confirmation as an order first running on evidence does: `parameters_unverified` once the grace is over,
# whatever was raised, cleared or resolved before the restart (its session's end cleared it), and once only.

READ_BACK_ALARMS = ("parameters_unverified", "parameter_mismatch")
AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}


def resumed_after_a_restart(capture, device_id: str, parameters: dict | None) -> tuple[InfusionSession, datetime]:
    """An order confirmed with `parameters` and running, interrupted by a restart (bootId 1 -> 2), then reported
    running again by the pump (progress at its own rate); the session, and when it ran again."""
    now = timezone.now()
    make_device(device_id)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = confirmed_order(device_id, parameters=parameters, bolus_enabled=False, bolus_volume_ml=0.0)
    progress = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.5, "infusionId": session.infusion_id,
                "bootId": "boot-1"}  # fmt: skip
    apply([report(device_id, "progress", progress, at=now + timedelta(seconds=1))], capture)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=2))],
          capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
    resumed_at = now + timedelta(seconds=3)
    apply([report(device_id, "progress", {**progress, "deliveredVolumeMl": 1.0, "bootId": "boot-2"}, at=resumed_at)],
          capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert (session.status, session.read_back) == (SessionStatus.RUNNING, "unverified"), session.status
    return session, resumed_at


def session_alarms(session: InfusionSession, type: str = "parameters_unverified") -> list[str]:
    return list(Alarm.objects.filter(session=session, type=type).order_by("pk").values_list("state", flat=True))


@pytest.mark.parametrize("confirmed_with", [None, AS_ORDERED], ids=["unverified", "confirmed_as_ordered"])
def test_an_order_resumed_after_a_restart_is_alarmed_unverified_after_the_grace_once(
    confirmed_with, grace, django_capture_on_commit_callbacks
):
    """Confirmed without parameters (`parameters_unverified` raised, then cleared by the restart's end of the
    session), or confirmed as ordered: resumed after the restart, the session reads UNVERIFIED and the grace check
    (`confirmation IS NULL`, no such alarm ever raised for it) never raised one: no alarm said so."""
    capture = django_capture_on_commit_callbacks
    session, resumed_at = resumed_after_a_restart(capture, f"R14_RES_{bool(confirmed_with)}", confirmed_with)
    before = session_alarms(session)
    housekeeping, connected = Housekeeping(), resumed_at - timedelta(hours=1)
    with capture(execute=True):
        housekeeping.tick(resumed_at + timedelta(seconds=GRACE_S - 1), connected_since=connected)
    assert session_alarms(session) == before, "raised before the resumed order's grace was over"
    with capture(execute=True):
        housekeeping.tick(resumed_at + timedelta(seconds=GRACE_S + 1), connected_since=connected)
        housekeeping.tick(resumed_at + timedelta(seconds=GRACE_S + 2), connected_since=connected)
    assert session_alarms(session) == [*before, "active"], (
        f"the order runs again after a restart, its parameters unverified since, and no alarm says so (or it was "
        f"raised twice): parameters_unverified {session_alarms(session)}, read-back "
        f"{InfusionSession.objects.get(pk=session.pk).read_back!r}"
    )
    alarm = Alarm.objects.get(session=session, type="parameters_unverified", state="active")
    alarm_resolve(alarm_id=alarm.pk, user=make_user(f"res-{alarm.pk}", is_staff=True), reason="checked_at_pump",
                  note="screen checked", alerts=alarm.alerts)  # fmt: skip
    with capture(execute=True):
        housekeeping.tick(resumed_at + timedelta(seconds=GRACE_S + 30), connected_since=connected)
    assert session_alarms(session) == [*before, "cleared"], "resolved by a person, it is not raised again"


@pytest.mark.parametrize("after_s", [1.0, GRACE_S + 2], ids=["within_the_grace", "after_the_grace"])
def test_a_confirmation_after_the_restart_verifies_the_resumed_order(
    after_s, grace, django_capture_on_commit_callbacks
):
    """A confirmation the pump sends after the restart, every parameter as ordered, is read back: the resumed order
    matches, and no `parameters_unverified` is left (none raised within the grace; the grace's cleared after it).
    Before, it was ignored: the session held a confirmation from before the restart."""
    capture = django_capture_on_commit_callbacks
    session, resumed_at = resumed_after_a_restart(capture, f"R14_RECONF_{after_s:g}", AS_ORDERED)
    housekeeping, connected = Housekeeping(), resumed_at - timedelta(hours=1)
    with capture(execute=True):
        housekeeping.tick(resumed_at + timedelta(seconds=after_s - 0.5), connected_since=connected)
    confirmation = {"infusionId": session.infusion_id, "confirmed": True, "parameters": AS_ORDERED, "bootId": "boot-2"}
    apply([report(session.device.device_id, "infusion", confirmation, at=resumed_at + timedelta(seconds=after_s))],
          capture)  # fmt: skip
    with capture(execute=True):
        housekeeping.tick(resumed_at + timedelta(seconds=after_s + GRACE_S + 1), connected_since=connected)
    session = InfusionSession.objects.get(pk=session.pk)
    active = list(Alarm.objects.filter(session=session, state="active", type__in=READ_BACK_ALARMS)
                  .values_list("type", flat=True))  # fmt: skip
    assert (session.read_back, active) == ("match", []), (
        f"the pump confirmed the resumed order as ordered after its restart: read-back {session.read_back!r}, "
        f"active alarms {active}"
    )


def test_the_migration_gives_orders_running_unconfirmed_their_grace_as_before():
    """Sessions on their pump unconfirmed when 0022 runs keep the old rule (grace from their last status change,
    not again once `parameters_unverified` was raised); a confirmed one and an ended one are not waiting."""
    from importlib import import_module

    from django.apps import apps

    stamp = import_module("devices.migrations.0022_session_unconfirmed_since").stamp_unconfirmed
    since, rows = timezone.now() - timedelta(minutes=5), {}
    for name, status, confirmation, said in [("waits", "running", None, False), ("said", "paused", None, True),
                                             ("confirmed", "running", {"confirmed": True}, False),
                                             ("ended", "stopped", None, False)]:  # fmt: skip
        make_device(f"MIG_{name}")
        session = infusion_start(device_id=f"MIG_{name}", order=make_order())
        stored = InfusionSession.objects.filter(pk=session.pk)
        stored.update(status=status, confirmation=confirmation, running_evidence="bolus", status_changed_at=since)
        if said:
            Alarm.objects.create(device=session.device, session=session, type="parameters_unverified",
                                 priority="medium", source="server", state="cleared")  # fmt: skip
        rows[name] = session.pk
    stamp(apps, None)
    stamped = {name: InfusionSession.objects.values_list("unconfirmed_since", "unverified_raised").get(pk=pk)
               for name, pk in rows.items()}  # fmt: skip
    assert stamped == {"waits": (since, False), "said": (since, True), "confirmed": (None, False),
                       "ended": (None, False)}, stamped  # fmt: skip
