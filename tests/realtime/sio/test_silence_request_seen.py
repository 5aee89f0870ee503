"""`silence:ward`'s `seen` (v1.2): the alarms the screen had shown when she pressed. A request without it is refused
(`seen_required`, a page older than the server: nothing silenced, reload), one with a malformed list is a malformed
request, and the service's refusal of an alarm unseen reaches the client with its code (`realtime/sio/silence.py`)."""

import pytest
from django.db import transaction

from devices.models import WardSilence
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from realtime.sio.auth import Principal
from realtime.sio.limits import ConnectionLimits, RequestRefused
from realtime.sio.silence import SEEN_AT_MOST, silence_request
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


@pytest.fixture
def nurse():
    ward = make_ward("rq")
    make_device("RQ_1", ward=ward)
    return Principal(user=make_user("rq-nurse", ward=ward))


def asked(principal: Principal, **fields) -> tuple[dict | RequestRefused, ConnectionLimits]:
    """The request's `ward:silence` body, or its refusal; and the connection's limits after it."""
    limits = ConnectionLimits()
    try:
        return silence_request(principal, {"ward": "rq", **fields}, limits), limits
    except RequestRefused as refusal:
        return refusal, limits


def test_a_request_that_does_not_say_what_it_showed_is_refused_and_told_to_reload(nurse):
    refusal, limits = asked(nurse, seconds=60)
    assert isinstance(refusal, RequestRefused) and refusal.code == "seen_required", refusal
    assert "Reload the page" in refusal.message and "nothing silenced" in refusal.message
    assert limits.strikes == 0, "an old page is not an abusive client"
    assert not WardSilence.objects.exists()


def test_ending_a_silence_needs_no_list(nurse):
    body, _ = asked(nurse, seconds=0)
    assert body == {"ward": "rq", "until": None, "by": None, "active": False, "ended": None}, body


@pytest.mark.parametrize(
    "seen",
    [{"id": 1}, [1, 2], [{"id": 1, "alerts": 1}], [{"id": 1, "alerts": 1, "tier": 0, "x": 1}],
     [{"id": "1", "alerts": 1, "tier": 0}], [{"id": 1, "alerts": True, "tier": 0}], [{"id": 0, "alerts": 1, "tier": 0}],
     [{"id": 1, "alerts": 0, "tier": 0}], [{"id": 1, "alerts": 1, "tier": -1}],
     [{"id": n, "alerts": 1, "tier": 0} for n in range(1, SEEN_AT_MOST + 2)]],
)  # fmt: skip
def test_a_malformed_list_is_a_malformed_request(nurse, seen):
    refusal, limits = asked(nurse, seen=seen)
    assert isinstance(refusal, RequestRefused) and refusal.message.startswith("Expected {seen:"), refusal
    assert limits.strikes == 1


def test_the_refusal_of_an_alarm_unseen_carries_its_code(nurse):
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="RQ_1"), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE)  # fmt: skip
    refusal, limits = asked(nurse, seen=[])
    assert isinstance(refusal, RequestRefused), refusal
    assert (refusal.code, refusal.message) == ("alarm_unseen", "A new alarm came as you pressed: look at it, then "
                                               "silence again")  # fmt: skip
    assert limits.strikes == 0 and not WardSilence.objects.exists()


def test_a_silence_of_what_was_shown_is_made(nurse):
    with transaction.atomic():
        alarm = alarm_raise(device=device_lock(device_id="RQ_1"), type="occlusion", priority=AlarmPriority.HIGH,
                            source=AlarmSource.DEVICE)  # fmt: skip
    body, _ = asked(nurse, seen=[{"id": alarm.pk, "alerts": 1, "tier": 0}], reason="Attending the alarm")
    assert isinstance(body, dict) and body["active"] and body["priority"] == "high", body
