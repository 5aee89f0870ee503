"""A drug (or a patient's name) of only characters that draw nothing, a zero-width space, a joiner, a byte-order mark,
a no-break space, is refused with a 400 naming the field, as an empty one is. Before (review 33, "noticed"), `strip()`
kept the zero-width characters, so "\u200b" passed as a drug: the order was placed and every screen showed it with a
blank drug. An optional field of such characters only (bed, allergies) is stored empty, so screens show "—" for it,
as for a field left empty, not a blank that looks like something was typed."""

import pytest

from devices.models import InfusionSession
from tests.devices.test_views_api import START_URL, WIZARD, post
from tests.factories import signed_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("device")]

DRAWS_NOTHING = {
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte-order mark": "\ufeff",
    "mixed with spaces": " \u200b\u00a0\u2060 \ufeff\u200d ",
    "soft hyphen and a combining mark": "\u00ad\u0301",
    "Hangul filler": "\u3164",
}


@pytest.mark.parametrize("text", DRAWS_NOTHING.values(), ids=DRAWS_NOTHING.keys())
@pytest.mark.parametrize("field", ["drug", "patient_name"])
def test_a_field_that_shows_nothing_is_refused_naming_it(nurse, field, text):
    response = post(signed_in(nurse), START_URL, {**WIZARD, field: text})
    placed = list(InfusionSession.objects.values_list(field, flat=True))
    assert response.status_code == 400 and response.json().get("field") == field, (
        f"a {field} of {text!r} (nothing a screen shows) was answered {response.status_code}: the order placed shows "
        f"{field} {placed}"
    )
    assert response.json()["message"], "the refusal says what to enter"
    assert not placed, "nothing was placed"


def test_a_drug_with_a_visible_name_around_invisible_characters_is_placed(nurse):
    response = post(signed_in(nurse), START_URL, {**WIZARD, "drug": "\u200bHeparin 1000 IU/mL"})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("field", ["patient_bed", "patient_allergies"])
def test_an_optional_field_that_shows_nothing_is_stored_empty(nurse, field):
    response = post(signed_in(nurse), START_URL, {**WIZARD, field: "\u200b\u2060"})
    assert response.status_code == 201, response.content
    stored = getattr(InfusionSession.objects.get(), field)
    assert stored == "", f"{field} stored as {stored!r}: a screen shows it blank, not as left empty"
