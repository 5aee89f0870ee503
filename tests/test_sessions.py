"""Sessions end after 12 h idle (configurable), not Django's 14 days; view-only wall-screen stations are exempt."""

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.utils import timezone

from pumpstream.sessions import REFRESHED_AT, user_is_station
from tests.factories import make_user, make_ward

pytestmark = pytest.mark.django_db

TWELVE_HOURS = 12 * 3600


def signed_in(client, username: str):
    response = client.post("/accounts/login/", {"username": username, "password": "pw-for-tests-only"})
    assert response.status_code == 302, "sign-in failed"
    return client


def expires_in(client) -> float:
    row = Session.objects.get(session_key=client.session.session_key)
    return (row.expire_date - timezone.now()).total_seconds()


def station(username: str):
    user = make_user(username, ward=make_ward("icu"), can_command=False)
    user.groups.add(Group.objects.get_or_create(name="Ward stations")[0])
    return user


def test_a_clinician_session_ends_after_twelve_idle_hours(client):
    make_user("idle-clinician", ward=make_ward("icu"))
    signed_in(client, "idle-clinician")
    assert TWELVE_HOURS - 60 < expires_in(client) <= TWELVE_HOURS, (
        f"a clinician's session lives {expires_in(client) / 3600:.1f} h without a request (want 12 h)")  # fmt: skip


def test_each_request_moves_the_idle_limit_and_it_is_configurable(client, settings):
    settings.SESSION_IDLE_TIMEOUT_S = 600
    make_user("busy-clinician", ward=make_ward("icu"))
    signed_in(client, "busy-clinician")
    assert 540 < expires_in(client) <= 600
    session = client.session
    session[REFRESHED_AT] = 0  # the last refresh was long ago
    session.save()
    Session.objects.filter(session_key=session.session_key).update(
        expire_date=timezone.now() + timezone.timedelta(seconds=30))  # fmt: skip
    assert client.get("/").status_code == 200
    assert expires_in(client) > 540, "a request did not move the idle limit"


def test_an_idle_session_is_signed_out(client):
    make_user("gone-clinician", ward=make_ward("icu"))
    signed_in(client, "gone-clinician")
    Session.objects.filter(session_key=client.session.session_key).update(expire_date=timezone.now())
    assert "/accounts/login/" in client.get("/").url


def test_a_view_only_station_is_exempt_but_not_one_that_can_command(client, settings):
    wall = station("icu-wall")
    assert user_is_station(wall)
    signed_in(client, "icu-wall")
    assert expires_in(client) > settings.STATION_SESSION_AGE_S - 60, "a wall screen would sign itself out"
    commanding = station("icu-wall-with-rights")
    commanding.user_permissions.add(*make_user("template", can_command=True).user_permissions.all())
    assert not user_is_station(type(commanding).objects.get(pk=commanding.pk))
