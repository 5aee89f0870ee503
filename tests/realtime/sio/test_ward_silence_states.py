"""A ward feed's (re)subscription is told each ward's silence state, on or not (`silence_states`): a station that
was away when a silence ended must not keep it (review 3: only silences that were on were sent)."""

import pytest

from devices.services.silences import ward_silence, ward_silence_end
from realtime.sio.ward_feed import silence_states
from tests.factories import make_user, make_ward

pytestmark = pytest.mark.django_db


def test_a_feed_is_told_each_wards_silence_state_on_or_not():
    make_ward("sq")  # never silenced
    ended, on = make_ward("se"), make_ward("so")
    nurse = make_user("states-nurse", ward=ended)
    ward_silence(ward=ended, user=nurse, seconds=60, reason="")
    ward_silence_end(ward=ended, user=nurse)
    ward_silence(ward=on, user=nurse, seconds=60, reason="")
    ward_silence_end(ward=on, user=nurse)
    ward_silence(ward=on, user=nurse, seconds=60, reason="Changing the battery")  # its latest is on
    states = {body["ward"]: body for body in silence_states({"sq", "se", "so"})}
    assert sorted(states) == ["se", "so", "sq"], f"a ward's state was left out: {states}"
    assert (states["sq"]["active"], states["sq"]["ended"]) == (False, None), states["sq"]
    assert not states["se"]["active"] and states["se"]["ended"]["reason"] == "ended", states["se"]
    assert states["so"]["active"] and states["so"]["reason"] == "Changing the battery", states["so"]
    assert {body["ward"] for body in silence_states(None)} >= {"sq", "se", "so"}, "every ward when unscoped"
