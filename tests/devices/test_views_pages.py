"""The clinicians' pages: sign-in, ward visibility, what each page shows, permissions."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from devices.services.alarms import alarm_raise
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from devices.views.pages import card_before_live
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db


def page_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="page-data" type="application/json">') + len(
        '<script id="page-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


@pytest.fixture
def icu_nurse_client() -> Client:
    client = Client()
    client.force_login(make_user("nurse", ward=make_ward("icu")))
    return client


def test_pages_require_sign_in():
    make_device("PUMP_0001")
    for path in ("/", "/devices/PUMP_0001/", "/devices/PUMP_0001/start/"):
        response = Client().get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path


def test_overview_lists_only_the_users_wards(icu_nurse_client):
    make_device("PUMP_ICU", ward=make_ward("icu"), bed="4", last_seen_at=timezone.now())
    make_device("PUMP_ER", ward=make_ward("er"))
    html = icu_nurse_client.get("/").content.decode()
    assert 'data-device-id="PUMP_ICU"' in html
    assert "PUMP_ER" not in html, "a pump of another ward must not be shown"


def test_overview_shows_drug_rate_in_ml_per_hour_and_top_alarm(icu_nurse_client):
    device = make_device("PUMP_0001", ward=make_ward("icu"), last_seen_at=timezone.now())
    infusion_start(device_id="PUMP_0001", order=make_order(flow_rate_ml_min=2.0, drug="Heparin"))
    device.refresh_from_db()  # the start took the pump's next seqs
    alarm_raise(device=device, type="occlusion", priority=AlarmPriority.MEDIUM, source=AlarmSource.DEVICE)
    alarm_raise(device=device, type="bubble_detected", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)
    response = icu_nurse_client.get("/")
    pump = json.loads(response.context["pumps"] and json.dumps(response.context["pumps"]))[0]
    assert pump["drug"] == "Heparin"
    assert pump["orderedRateMlH"] == 120.0, "2 mL/min on the wire is 120 mL/h on the page"
    assert pump["rateMlH"] is None, "the pump reported no rate: the order's is not the pump's (review 19)"
    assert pump["topAlarm"]["priority"] == "high" and pump["topAlarm"]["type"] == "bubble_detected"
    assert "ordered 120.0 mL/h" in response.content.decode()


def test_overview_ward_filter(icu_nurse_client):
    user = make_user("charge", ward=make_ward("icu"))
    make_ward("er").members.add(user)
    make_device("PUMP_ICU", ward=make_ward("icu"))
    make_device("PUMP_ER", ward=make_ward("er"))
    client = Client()
    client.force_login(user)
    html = client.get("/?ward=er").content.decode()
    assert 'data-device-id="PUMP_ER"' in html and 'data-device-id="PUMP_ICU"' not in html
    assert page_data(client.get("/?ward=er"))["ward"] == "er"
    assert page_data(client.get("/?ward=nope"))["ward"] == "*", "an unknown ward shows all the user's wards"


def test_overview_says_when_monitoring_is_degraded(icu_nurse_client):
    html = icu_nurse_client.get("/").content.decode()
    assert (
        "Monitoring degraded" in html and 'id="degraded-banner" class="banner degraded" role="alert" hidden' not in html
    )


def test_monitor_of_another_wards_pump_is_404(icu_nurse_client):
    make_device("PUMP_ER", ward=make_ward("er"))
    assert icu_nurse_client.get("/devices/PUMP_ER/").status_code == 404
    assert icu_nurse_client.get("/devices/PUMP_ER/start/").status_code == 404
    assert icu_nurse_client.get("/devices/NOPE/").status_code == 404


def test_monitor_starts_from_the_same_shapes_as_the_live_events(icu_nurse_client):
    device = make_device("PUMP_0001", ward=make_ward("icu"), last_seen_at=timezone.now())
    nurse = get_user_model().objects.get(username="nurse")
    session = infusion_start(device_id="PUMP_0001", order=make_order(), user=nurse)
    device.refresh_from_db()
    alarm_raise(device=device, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)
    response = icu_nurse_client.get("/devices/PUMP_0001/")
    assert response.status_code == 200
    monitor = page_data(response)["monitor"]
    assert monitor["session"]["infusionId"] == session.infusion_id and monitor["session"]["status"] == "pending"
    assert monitor["alarms"][0]["type"] == "occlusion" and monitor["alarms"][0]["state"] == "active"
    assert monitor["commands"][0]["command"] == "START_INFUSION"
    assert any(event["kind"] == "user.infusion_start" and event["user"] == "nurse" for event in monitor["events"])
    assert monitor["seq"] == 5, "the page knows the seq it starts from"
    assert page_data(response)["canCommand"] is True


def test_watch_only_user_sees_no_controls_and_cannot_open_the_wizard():
    ward = make_ward("icu")
    make_device("PUMP_0001", ward=ward)
    client = Client()
    client.force_login(make_user("student", ward=ward, can_command=False))
    html = client.get("/devices/PUMP_0001/").content.decode()
    assert 'data-command="pause"' not in html and "you may not command it" in html
    response = client.get("/devices/PUMP_0001/start/")
    assert response.status_code == 403 and "You may not start infusions" in response.content.decode()


def test_wizard_page_shows_the_pumps_capacity(icu_nurse_client):
    make_device("PUMP_0001", ward=make_ward("icu"), max_rate_ml_min=10, max_volume_ml=500)
    html = icu_nurse_client.get("/devices/PUMP_0001/start/").content.decode()
    assert "Rate at most 600 mL/h; this pump holds 500 mL" in html
    assert 'id="waiting-modal"' in html and 'id="monitor"' in html


def test_the_overview_says_who_may_silence_the_ward_and_which_wards_it_covers():
    ward = make_ward("icu")
    make_device("PUMP_0001", ward=ward)
    wall, nurse = Client(), Client()
    wall.force_login(make_user("wall-screen", ward=ward, can_command=False))
    nurse.force_login(make_user("nurse", ward=ward))
    assert page_data(wall.get("/"))["canSilence"] is False, "a view-only screen's button must silence itself only"
    assert ">Silence this screen 2 min</button>" in wall.get("/").content.decode(), "and it says so"
    data = page_data(nurse.get("/"))
    assert data["canSilence"] is True and data["wards"] == ["icu"]


@pytest.mark.parametrize("seconds,label", [(120, "2 min"), (90, "90 s")])
def test_the_silence_button_says_the_configured_silence(icu_nurse_client, settings, seconds, label):
    """The ward's silence lasts WARD_SILENCE_DEFAULT_S: the button must not promise 2 min when it is 90 s."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "WARD_SILENCE_DEFAULT_S": seconds}
    response = icu_nurse_client.get("/")
    assert f"Silence the ward {label}</button>" in response.content.decode()
    assert page_data(response)["silenceS"] == seconds


@pytest.mark.parametrize(
    ("connectivity", "heard_s_ago", "label", "last_heard"),
    [
        ("online", 4.9, "Stale", "Last heard 4 s ago"),
        ("stale", 89, "Stale", "Last heard 89 s ago"),
        ("offline", 5399, "Offline", "Last heard 89 min ago"),
        ("online", 7500, "Stale", "Last heard 2 h 05 min ago"),
        ("unknown", None, "Never heard", "Never heard"),
        (None, None, "Never heard", "Never heard"),
    ],
)
def test_a_card_before_the_page_is_live_shows_no_pump_online(connectivity, heard_s_ago, label, last_heard):
    """As static/js/overview.js renders it before the page is live (`heardHere`, format.js `span`): the server's card
    said "online" and "running" until the script ran, and for good had it failed (review 42, finding 6)."""
    now = timezone.now()
    heard = None if heard_s_ago is None else now - timedelta(seconds=heard_s_ago)
    card = card_before_live(connectivity, heard, now)
    assert (card["label"], card["lastHeard"]) == (label, last_heard)
    assert card["connectivity"] != "online"
