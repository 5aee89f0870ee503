"""NUL in request bodies (review 10 on a2f99bd): refused in URL ids, the same PostgreSQL 500 was one JSON body away.

PostgreSQL refuses NUL in text (and `\\u0000` in jsonb); a2f99bd made the URL's pump and infusion ids answer 404,
but request bodies still reach the database: `infusionId`, `idempotencyKey` and `reason` of the command API, and the
wizard's text fields. Each must be refused (4xx JSON), never a 500. SQLite stores NUL, so these pass there.
The fixtures are test_views_api's; the cases matter on PostgreSQL (make test-postgres runs tests/devices).
"""

import pytest
from django.test import Client
from django.utils import timezone

from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db

WIZARD = {
    "patient_name": "Ada Lovelace", "patient_age": "36", "patient_weight_kg": "60.5", "patient_bed": "4",
    "drug": "Saline 0.9%", "patient_allergies": "none", "rate_ml_h": "120", "volume_ml": "30",
    "bolus_enabled": "on", "bolus_volume_ml": "5", "confirm": "start",
}  # fmt: skip
READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


@pytest.fixture
def device():
    ward = make_ward("icu")
    make_user("nurse", ward=ward)
    return make_device("PUMP_0001", ward=ward, last_seen_at=timezone.now(), max_rate_ml_min=10, max_volume_ml=500)


@pytest.fixture
def client(device) -> Client:
    from django.contrib.auth import get_user_model

    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="nurse"))
    client.get("/")
    return client


def post(client: Client, url: str, data: dict, *, json: bool = True):
    token = client.cookies["csrftoken"].value
    if json:
        return client.post(url, data, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    return client.post(url, data, HTTP_X_CSRFTOKEN=token)


@pytest.mark.parametrize("body", [
    {"command": "stop", "infusionId": "inf\u0000x"},
    {"command": "stop", "infusionId": None, "idempotencyKey": "k\u0000"},
    {"command": "stop", "infusionId": None, "reason": "a\u0000b"},
], ids=["infusionId", "idempotencyKey", "reason"])  # fmt: skip
def test_a_command_body_with_nul_is_refused_not_a_500(client, device, body):
    from django.contrib.auth import get_user_model

    nurse = get_user_model().objects.get(username="nurse")
    session = infusion_start(device_id=device.device_id, order=make_order(), user=nurse)
    device.refresh_from_db()
    infusion_confirm(device=device, infusion_id=session.infusion_id, confirmed=True, parameters=READ_BACK,
                     confirmation={"confirmed": True})  # fmt: skip
    if body.get("infusionId", "") is None:
        body = {**body, "infusionId": session.infusion_id}
    response = post(client, "/api/devices/PUMP_0001/commands/", {"askedAt": timezone.now().isoformat(), **body})
    assert response.status_code < 500, f"{body}: {response.status_code} {response.content[:300]!r}"


@pytest.mark.parametrize("field", ["patient_name", "drug", "patient_allergies", "patient_bed"])
def test_a_wizard_field_with_nul_is_refused_not_a_500(client, device, field):
    response = post(client, "/api/devices/PUMP_0001/infusions/", {**WIZARD, field: "x\u0000y"}, json=False)
    assert response.status_code < 500, f"{field}: {response.status_code} {response.content[:300]!r}"
