"""A start request repeated under its idempotency key but for ANOTHER patient's details (allergies, bed,
weight, age) is answered 201 with the order placed first, whose patient record differs: the API says "your order is
placed" for an order that is not the one sent. `orders._same_order` compares the patient's name only, though the
patient is part of the order (the wizard itself forgets its key when the patient step changes: `toggleSkip`, any
input). An integration (the API is documented for them) retrying with the key of its previous request, or a page whose
key survived an edit, gets the first order silently: the allergies the nurse typed on the second request are not on
the order the pump runs, and no error says so. The contract of the key: "a key of another order ... refused".
(Review 24, finding 6.)"""

import pytest

from devices.models import InfusionSession
from tests.devices.test_views_api import START_URL, WIZARD, post
from tests.factories import signed_in

pytestmark = pytest.mark.django_db

KEY = "start-key-other-patient-0001"


@pytest.mark.parametrize(
    "changed",
    [{"patient_allergies": "PENICILLIN"}, {"patient_bed": "12"}, {"patient_weight_kg": "6.5"},
     {"patient_age": "3"}],
    ids=["allergies", "bed", "weight", "age"],
)  # fmt: skip
@pytest.mark.usefixtures("device")
def test_a_key_repeated_for_another_patients_details_is_refused_not_answered_with_the_first_order(nurse, changed):
    client = signed_in(nurse)
    first = post(client, START_URL, {**WIZARD, "idempotencyKey": KEY})
    assert first.status_code == 201, first.content
    again = post(client, START_URL, {**WIZARD, **changed, "idempotencyKey": KEY})
    placed = InfusionSession.objects.get(infusion_id=first.json()["session"]["infusionId"])
    on_order = {"patient_allergies": placed.patient_allergies, "patient_bed": placed.patient_bed,
                "patient_weight_kg": placed.patient_weight_kg, "patient_age": placed.patient_age}  # fmt: skip
    assert again.status_code == 409 and again.json().get("code") == "idempotency_conflict", (
        f"a start sent with {changed} under the key of an order placed with {on_order} was answered "
        f"{again.status_code} with that first order ({again.json().get('session', {}).get('infusionId')}): the "
        f"caller is told its order is placed, but the order on the pump carries the other patient details"
    )
