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
