"""Review 12: a pump seen infusing 10x the ordered rate, whose confirmation then echoed the order, was shown
"Pump confirmed the order: parameters match": the read-back's `mismatch` (from its running progress) was overwritten
by the confirmation's `match`, and the rate was never compared again (once its alarm was resolved, nothing said it).

The sequence (firmware with infusionId, confirming once its first reports are out, or a confirmation held up in the
broker): `started` naming the order (evidence: running, read-back `unverified`), running progress at 20 mL/min for
an order of 2 mL/min (`parameter_mismatch` high, read-back `mismatch`), then the confirmation with the order's
`parameters`. Through the bridge's own batch (`BatchIngest`), as the pump's messages arrive.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.services.alarm_rules import alarm_resolve
from devices.services.sessions import infusion_start
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import send

pytestmark = pytest.mark.django_db


def test_a_matching_confirmation_does_not_overwrite_a_rate_mismatch_seen_running(django_capture_on_commit_callbacks):
    make_device("RB_LATE")
    session = infusion_start(device_id="RB_LATE", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id = session.infusion_id
    send(django_capture_on_commit_callbacks, "RB_LATE", "status", {"status": "started", "infusionId": infusion_id}, 1)
    send(django_capture_on_commit_callbacks, "RB_LATE", "progress",
           {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.3, "infusionId": infusion_id}, 2)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"  # as documented: the panel turns
    send(django_capture_on_commit_callbacks, "RB_LATE", "infusion",
           {"infusionId": infusion_id, "confirmed": True,
            "parameters": {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}},
           3)  # fmt: skip
    send(django_capture_on_commit_callbacks, "RB_LATE", "progress",
           {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.6, "infusionId": infusion_id}, 4)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    alarms = list(Alarm.objects.filter(session=session).values_list("type", "state"))
    assert session.read_back == "mismatch", (
        f"the pump was seen infusing 20 mL/min for an order of 2; after its confirmation echoed the order the screen "
        f"says read-back {session.read_back!r} ('Pump confirmed the order: parameters match'), alarms {alarms}"
    )


def test_another_wrong_rate_after_a_resolved_mismatch_alarms_again(django_capture_on_commit_callbacks):
    make_device("RB_AGAIN")
    session = infusion_start(device_id="RB_AGAIN", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id, capture = session.infusion_id, django_capture_on_commit_callbacks
    send(capture, "RB_AGAIN", "status", {"status": "started", "infusionId": infusion_id}, 1)
    running = {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.3, "infusionId": infusion_id}
    send(capture, "RB_AGAIN", "progress", running, 2)
    first = Alarm.objects.get(session=session, type="parameter_mismatch", state="active")
    send(capture, "RB_AGAIN", "progress", {**running, "deliveredVolumeMl": 0.6}, 3)
    assert Alarm.objects.get(pk=first.pk).count == 1, "a mismatch said and still active is not counted per progress"
    alarm_resolve(alarm_id=first.pk, user=make_user("rb-nurse", is_staff=True), reason="checked_at_pump",
                  note="looked at it", alerts=1)  # fmt: skip
    send(capture, "RB_AGAIN", "progress", {**running, "flowRate": 2.0, "deliveredVolumeMl": 0.9}, 4)
    assert not Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").exists(), (
        "a pump back on its order's rate is not alarmed again"
    )
    send(capture, "RB_AGAIN", "progress", {**running, "deliveredVolumeMl": 1.2}, 5)
    assert not Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").exists(), (
        "the rate a person resolved the mismatch at (checked at the pump) alarms again every second"
    )
    send(capture, "RB_AGAIN", "progress", {**running, "flowRate": 30.0, "deliveredVolumeMl": 1.6}, 6)
    again = Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").first()
    assert again is not None and again.pk != first.pk, (
        "the pump runs another rate off its order after the mismatch was resolved, and nothing says so"
    )
    assert InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"


def test_a_late_confirmation_clears_unverified_on_a_mismatch(settings, django_capture_on_commit_callbacks):
    """Review 13: `parameters_unverified` (no confirmation within the grace) stayed active, saying the pump did not
    report its parameters, after a confirmation reported them on a session kept a mismatch."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "EVIDENCE_CONFIRMATION_GRACE_S": 5.0}
    make_device("RB_UNV")
    session = infusion_start(device_id="RB_UNV", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id, capture, now = session.infusion_id, django_capture_on_commit_callbacks, timezone.now()
    send(capture, "RB_UNV", "status", {"status": "started", "infusionId": infusion_id}, 0)
    with capture(execute=True):
        Housekeeping().tick(now + timedelta(seconds=10), connected_since=now - timedelta(hours=1))
    assert Alarm.objects.filter(session=session, type="parameters_unverified", state="active").exists()
    send(capture, "RB_UNV", "progress", {"status": "running", "flowRate": 20.0, "infusionId": infusion_id}, 11)
    send(capture, "RB_UNV", "infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": {
        "flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}}, 12)  # fmt: skip
    active = set(Alarm.objects.filter(session=session, state="active").values_list("type", flat=True))
    assert active == {"parameter_mismatch"}, f"its parameters reported, still said unreported: {active}"
