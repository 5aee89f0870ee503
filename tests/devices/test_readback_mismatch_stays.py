"""Review 12: a pump seen infusing 10x the ordered rate, whose confirmation then echoed the order, was shown
"Pump confirmed the order: parameters match": the read-back's `mismatch` (from its running progress) was overwritten
by the confirmation's `match`, and the rate was never compared again (once its alarm was resolved, nothing said it).

The sequence (firmware with infusionId, confirming once its first reports are out, or a confirmation held up in the
broker): `started` naming the order (evidence: running, read-back `unverified`), running progress at 20 mL/min for
an order of 2 mL/min (`parameter_mismatch` high, read-back `mismatch`), then the confirmation with the order's
`parameters`. Through the bridge's own batch (`BatchIngest`), as the pump's messages arrive.
"""

import pytest

from devices.models import Alarm, InfusionSession
from devices.services.alarm_rules import alarm_resolve
from devices.services.sessions import infusion_start
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


def test_a_pump_still_off_its_order_after_the_mismatch_was_resolved_alarms_again(django_capture_on_commit_callbacks):
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
    again = Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").first()
    assert again is not None and again.pk != first.pk, (
        "the pump runs 10x its order's rate again after the mismatch was resolved, and nothing says so"
    )
    assert InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"
