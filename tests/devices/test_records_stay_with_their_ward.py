"""An infusion's record belongs to the ward it was given in, wherever its pump goes next (review 46, H2).

Ward B's nurse gives Jane (bed 4B) Morphine on PUMP_0004, which then stops; an administrator moves the idle pump to the
ICU. Every read was judged by the pump's ward now: the ICU's clinician, never a member of ward B, read the pump's event
log (its infusion ids), then Jane's name, bed and drug (`/api/infusions/<id>/`), her delivery curve (`history`), and
the monitor's server-rendered page showed her last infusion; ward B's nurse got 404 for her own patient's record. Now
the ICU's screens of the pump show the pump and the ICU's own records only, and ward B keeps Jane's by its id.

An infusion on its pump goes with it (a patient moved with the pump): it is its new ward's, and ends that ward's.
"""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.selectors import session_current
from devices.services.registration import pump_registration_save
from devices.services.requests import infusion_cancel
from devices.states import SessionStatus
from protocol import events
from tests.devices.test_cancel_on_a_busy_pump import stops_published
from tests.factories import make_device, make_user, make_ward, signed_in
from tests.support.ingest import ingest as ingest_batch
from tests.support.ingest import report

pytestmark = pytest.mark.django_db

PUMP = "PUMP_0004"
JANE = {"patient_name": "Jane WardB", "patient_bed": "4B", "patient_allergies": "penicillin", "drug": "Morphine",
        "rate_ml_h": "60", "volume_ml": "10", "confirm": "start"}  # fmt: skip


@pytest.fixture
def wards():
    """Ward B (its nurse, PUMP_0004 heard just now) and the ICU (its clinician), both watched."""
    ward_b, icu = make_ward("ward_b"), make_ward("icu")
    make_device(PUMP, ward=ward_b, bed="4", last_seen_at=timezone.now())
    return {"nurse_b": make_user("nurse_b", ward=ward_b), "clinician": make_user("clinician", ward=icu),
            "ward_b": ward_b, "icu": icu}  # fmt: skip


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    """Pump reports applied as the bridge applies them, their commit's listeners run (`tests/support/ingest.py`)."""
    return django_capture_on_commit_callbacks


def post(client: Client, url: str, data: dict):
    return client.post(url, data, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)


def ingest(capture, kind: str, body: dict, at_s: float = 0.0) -> None:
    ingest_batch([report(PUMP, kind, body, at_s)], capture)


def jane_ordered(nurse_b) -> InfusionSession:
    """Jane's order, placed from ward B's wizard (pending)."""
    response = post(signed_in(nurse_b), f"/api/devices/{PUMP}/infusions/", JANE)
    assert response.status_code == 201, response.content
    return InfusionSession.objects.get(infusion_id=response.json()["session"]["infusionId"])


def jane_running(nurse_b, capture) -> InfusionSession:
    """Jane's order confirmed and infusing, an occlusion raised and cleared on the way (ward B's alarm record)."""
    session = jane_ordered(nurse_b)
    ingest(capture, "infusion", {"confirmed": True, "infusionId": session.infusion_id})
    ingest(capture, "progress", {"status": "running", "infusionId": session.infusion_id, "flowRate": 1.0,
                                 "deliveredVolumeMl": 1.0, "volumeRemainingMl": 9.0}, 1)  # fmt: skip
    ingest(capture, "error", {"type": "occlusion", "severity": "high", "infusionId": session.infusion_id}, 2)
    ingest(capture, "error", {"type": "occlusion_cleared", "infusionId": session.infusion_id}, 3)
    return session


def jane_stopped(nurse_b, capture) -> InfusionSession:
    session = jane_running(nurse_b, capture)
    ingest(capture, "actions", {"action": "MANUAL_STOP", "infusionId": session.infusion_id}, 4)
    session.refresh_from_db()
    assert session.status == SessionStatus.STOPPED, session.status
    return session


def moved_to(ward) -> Device:
    """The pump moved by an administrator (the admin's road: `pump_registration_save`)."""
    device = Device.objects.get(device_id=PUMP)
    device.ward = ward
    admin = get_user_model().objects.get_or_create(username="admin", defaults={"is_staff": True})[0]
    return pump_registration_save(device=device, fields={"ward"}, user=admin)


def test_the_pumps_new_ward_reads_nothing_of_the_infusion_the_ward_it_left_gave(wards, capture):
    jane = jane_stopped(wards["nurse_b"], capture)
    alarm = Alarm.objects.get(session=jane, type="occlusion")
    moved_to(wards["icu"])
    icu = signed_in(wards["clinician"])
    log = icu.get(f"/api/devices/{PUMP}/events/")
    assert log.status_code == 200
    named = [entry for entry in log.json()["events"] if entry["infusionId"] == jane.infusion_id]
    assert not named, f"the ICU's log of the pump lists ward B's infusion: {named}"
    assert "Morphine" not in json.dumps(log.json()), "the ICU's log of the pump names ward B's drug"
    detail = icu.get(f"/api/infusions/{jane.infusion_id}/")
    assert detail.status_code == 404, f"the ICU reads ward B's patient: {detail.content[:300]!r}"
    history = icu.get(f"/api/devices/{PUMP}/history/?infusionId={jane.infusion_id}").json()
    assert history["points"] == [] and history["infusionId"] is None, f"the ICU reads Jane's delivery curve: {history}"
    latest = icu.get(f"/api/devices/{PUMP}/history/").json()
    assert latest["infusionId"] is None, "the monitor's latest infusion of the pump is ward B's (it reads it next)"
    for page in (f"/devices/{PUMP}/", f"/devices/{PUMP}/start/"):
        body = icu.get(page).content.decode()
        for said in ("Jane WardB", "Morphine", jane.infusion_id):
            assert said not in body, f"the ICU's page {page} shows ward B's {said!r}"
    acknowledged = post(icu, f"/api/alarms/{alarm.pk}/acknowledge/", {})
    assert acknowledged.status_code == 404, f"ward B's alarm record answered the ICU: {acknowledged.content[:200]!r}"
    assert session_current(Device.objects.get(device_id=PUMP)) is None


def test_the_ward_that_gave_it_keeps_its_patients_record_after_the_pump_left(wards, capture):
    jane = jane_stopped(wards["nurse_b"], capture)
    moved_to(wards["icu"])
    ward_b = signed_in(wards["nurse_b"])
    detail = ward_b.get(f"/api/infusions/{jane.infusion_id}/")
    assert detail.status_code == 200, "ward B lost its own patient's record when the pump left"
    assert detail.json()["session"]["patient"] == "Jane WardB" and detail.json()["session"]["patientBed"] == "4B"
    history = ward_b.get(f"/api/devices/{PUMP}/history/?infusionId={jane.infusion_id}")
    assert history.status_code == 200 and len(history.json()["points"]) >= 3, history.content[:300]
    assert ward_b.get(f"/api/devices/{PUMP}/events/").status_code == 404, "the pump itself is no longer ward B's"
    assert ward_b.get(f"/api/devices/{PUMP}/history/").status_code == 404
    staff = signed_in(make_user("matron", is_staff=True))
    assert staff.get(f"/api/infusions/{jane.infusion_id}/").status_code == 200, "staff read every ward's records"


def test_a_pump_moved_with_its_running_infusion_takes_it_to_its_new_ward(wards, capture):
    """A patient moved to the ICU with the pump infusing: the ICU watches it and may read it; it ends the ICU's."""
    jane = jane_running(wards["nurse_b"], capture)
    moved_to(wards["icu"])
    icu, ward_b = signed_in(wards["clinician"]), signed_in(wards["nurse_b"])
    assert icu.get(f"/api/infusions/{jane.infusion_id}/").status_code == 200, "the ICU cannot read what its pump runs"
    assert "Jane WardB" in icu.get(f"/devices/{PUMP}/").content.decode(), "the ICU's monitor hides what the pump runs"
    assert ward_b.get(f"/api/infusions/{jane.infusion_id}/").status_code == 404
    ingest(capture, "actions", {"action": "MANUAL_STOP", "infusionId": jane.infusion_id}, 4)
    jane.refresh_from_db()
    assert jane.status == SessionStatus.STOPPED and jane.ward == wards["icu"], "it ended the ICU's"
    assert icu.get(f"/api/infusions/{jane.infusion_id}/").status_code == 200
    assert ward_b.get(f"/api/infusions/{jane.infusion_id}/").status_code == 404
    assert icu.get(f"/api/devices/{PUMP}/history/").json()["infusionId"] == jane.infusion_id


def test_a_late_change_of_the_ward_it_left_is_not_sent_to_the_pumps_new_ward(wards, emitted, capture):
    """Ward B cancels Jane's order; the STOP clearing the pump's confirm screen waits unsent (the broker away); the idle
    pump moves to the ICU; then it reports infusing, which withdraws that STOP and says so in the cancelled order's
    reason (when the outbox comes to publish it): a `device:session` of Jane's order, with her name and bed, went to
    the ICU's screens of the pump."""
    jane = jane_ordered(wards["nurse_b"])
    infusion_cancel(infusion_id=jane.infusion_id, user=wards["nurse_b"])
    moved_to(wards["icu"])
    emitted.clear()
    ingest(capture, "progress", {"status": "running", "flowRate": 1.0,
                                                            "deliveredVolumeMl": 0.5}, 1)  # fmt: skip
    assert stops_published(PUMP) == [], "the STOP clearing the screen went to a pump that reports infusing"
    jane.refresh_from_db()
    assert "nothing was sent" in jane.status_reason, f"the STOP was not withdrawn: {jane.status_reason}"
    told = [change for change in emitted if "Jane WardB" in json.dumps(change.body)]
    assert not told, f"ward B's patient was sent to the ICU's screens: {[change.event for change in told]}"
    assert not [change for change in emitted if change.event == events.DEVICE_SESSION]
