"""Sessions end after 12 h idle (configurable), not Django's 14 days; view-only wall-screen stations are exempt."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.urls import resolve
from django.utils import timezone

from pumpstream.sessions import BACKGROUND_HEADER, BACKGROUND_VIEWS, REFRESHED_AT, user_is_station
from tests.factories import make_user, make_ward
from tests.support.processes import ROOT

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


def idle_for_a_while(client) -> None:
    """The person's last own request was long ago: her session expires in 30 s unless something moves it."""
    session = client.session
    session[REFRESHED_AT] = 0
    session.save()
    Session.objects.filter(session_key=session.session_key).update(
        expire_date=timezone.now() + timezone.timedelta(seconds=30))  # fmt: skip


def test_the_pages_own_bridge_poll_does_not_keep_an_idle_session_alive(client):
    """Review 3: every page polls `/api/bridge/` every 5 s by itself; a monitor left open on a shared computer kept a
    session with Stop rights signed in for ever."""
    make_user("idle-clinician", ward=make_ward("icu"))
    signed_in(client, "idle-clinician")
    idle_for_a_while(client)
    assert client.get("/api/bridge/").status_code == 200
    assert expires_in(client) <= 30, (
        f"the page's automatic bridge poll moved an idle clinician's session to {expires_in(client) / 3600:.1f} h "
        "from now: with a page open, the 12 h idle limit never comes"
    )


def test_no_request_a_page_makes_by_itself_moves_the_idle_limit(client):
    make_user("idle-clinician", ward=make_ward("icu"))
    signed_in(client, "idle-clinician")
    idle_for_a_while(client)
    for url in ("/api/devices/P1/events/", "/api/devices/P1/history/", "/api/infusions/I1/", "/ops/status.json"):
        client.get(url)
    client.get("/", headers={BACKGROUND_HEADER: "poll"})
    assert expires_in(client) <= 30, "a request the page made by itself moved the idle limit"
    client.get("/")
    assert expires_in(client) > TWELVE_HOURS - 60, "the person's own request must move it"


def test_a_stations_polls_keep_it_signed_in(client, settings):
    station("icu-wall")
    signed_in(client, "icu-wall")
    idle_for_a_while(client)
    assert client.get("/api/bridge/").status_code == 200
    assert expires_in(client) > settings.STATION_SESSION_AGE_S - 60, "a wall screen would sign itself out"


def test_the_poll_of_an_expired_session_answers_401_for_the_page_to_notice(client):
    """The station shows "Signed out" on it (`watchBridge`'s onSignedOut); other pages reload when their socket,
    closed within seconds of the expiry (realtime/sio/rights.py), is refused as unauthorized."""
    make_user("gone-clinician", ward=make_ward("icu"))
    signed_in(client, "gone-clinician")
    Session.objects.filter(session_key=client.session.session_key).update(expire_date=timezone.now())
    assert client.get("/api/bridge/").status_code == 401


def test_every_read_the_page_scripts_make_is_background(client):
    """Every `/api/` or `/ops/` URL in static/js that answers GET (a page's own poll or re-read: a person's actions
    are POSTs) is one of `BACKGROUND_VIEWS`, so that none of them keeps an idle session alive."""
    found = {
        (path.name, re.sub(r"\$\{[^}]*\}", "1", match.group(1)))
        for path in (ROOT / "static" / "js").glob("*.js")
        for match in re.finditer(r"[\"`'](/(?:api|ops)/[^\"`'?]*)", path.read_text())
    }
    assert len(found) >= 8, f"the scan found too few URLs: {found}"
    reads = {(name, url, resolve(url).view_name) for name, url in found if client.get(url).status_code != 405}
    assert {view for _, _, view in reads} >= {"devices:api_bridge", "devices:api_events"}, reads
    not_background = [(name, url) for name, url, view in reads if view not in BACKGROUND_VIEWS]
    assert not not_background, f"page scripts read these without being background: {not_background}"


def test_a_station_given_command_rights_idles_out_like_a_clinician_while_its_page_polls(client):
    """A station's session lasts 90 days from its last request. Given Stop and Acknowledge rights it is a clinician's
    account, whose page's own polls are no activity: they left the 90-day expiry standing, so the wall screen held
    command rights for up to 90 days with nobody at it (review 15). Its next poll brings it down to the idle limit."""
    wall = station("icu-wall")
    signed_in(client, "icu-wall")
    assert expires_in(client) > TWELVE_HOURS
    wall.user_permissions.add(*Permission.objects.filter(codename__in=["command_device", "acknowledge_alarm"]))
    session = client.session
    session[REFRESHED_AT] = 0  # its last refresh was over a minute ago
    session.save()
    assert client.get("/api/bridge/", headers={BACKGROUND_HEADER: "1"}).status_code == 200
    assert expires_in(client) <= TWELVE_HOURS
    session = client.session
    session[REFRESHED_AT] = 0
    session.save()
    left = expires_in(client)
    assert client.get("/api/bridge/", headers={BACKGROUND_HEADER: "1"}).status_code == 200
    assert expires_in(client) <= left, "a poll is still no activity: it does not move the idle limit on"
