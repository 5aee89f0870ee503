"""The ward overview as the server renders it, before the page is live: the station's alarms, sound line and the
wards' silences, the ward's counts and each card's alarm, as static/js/station.js and overview.js first render them
(devices/views/overview_before_live.py); nothing said as live."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Alarm
from devices.services.silences import ward_silence
from devices.states import AlarmPriority, AlarmSource
from devices.views.overview_before_live import alarm_strip, summary_before_live
from tests.devices.test_views_pages import page_data
from tests.factories import make_device, make_user, make_ward

NOW = datetime(2026, 12, 6, 10, 20, 5, tzinfo=UTC)
RAISED = "2026-12-06T10:00:00+00:00"  # 20 min 5 s before NOW


def alarm(alarm_id: int, priority: str, *, message: str = "", acknowledged: bool = False, level: int = 0) -> dict:
    """A `ward:summary` pump's alarm (`topAlarm` and each of `alarms`)."""
    escalation = {"level": level, "at": RAISED} if level else None
    return {"id": alarm_id, "type": "occlusion", "key": "occlusion", "priority": priority, "message": message,
            "acknowledged": acknowledged, "raisedAt": RAISED, "lastRaisedAt": RAISED, "alerts": 1,
            "escalation": escalation}  # fmt: skip


def test_a_cards_alarm_as_overview_js_writes_it():
    escalated = alarm(1, "medium", message="Battery low", level=1)
    pump = {"deviceId": "P1", "topAlarm": escalated, "alarms": [escalated, alarm(2, "low"), alarm(3, "low")]}
    assert alarm_strip(pump, NOW) == "MEDIUM: Battery low · for 20 min · ESCALATED (tier 1) · +2 more alarms"
    answered = alarm(4, "high", acknowledged=True, level=2)
    said = alarm_strip({"topAlarm": answered, "alarms": [answered]}, NOW)
    assert said == "HIGH: Occlusion · for 20 min (acknowledged)", "an acknowledged alarm's tier counts for nothing"
    assert alarm_strip({"topAlarm": None, "alarms": []}, NOW) == ""


def test_the_wards_counts_before_the_page_is_live_count_no_pump_as_heard():
    """Every pump by the condition its card shows (not heard here), every active alarm by priority."""
    pumps = [{"alarms": [alarm(1, "high"), alarm(2, "high", acknowledged=True)]}, {"alarms": []},
             {"alarms": [alarm(3, "low")]}]  # fmt: skip
    assert summary_before_live(pumps, ["stale", "unknown", "stale"]) == [
        {"kind": "high", "words": "2 high alarms"},
        {"kind": "low", "words": "1 low alarm"},
        {"kind": "stale", "words": "2 stale"},
        {"kind": "unknown", "words": "1 never heard"},
    ]
    assert summary_before_live([], []) == [], "no pumps: the script's 'No pumps'"


@pytest.fixture
def nurse_client() -> Client:
    client = Client()
    client.force_login(make_user("nurse", ward=make_ward("icu")))
    return client


def alarm_raised(device_id: str, priority: str, message: str, **fields) -> Alarm:
    device = make_device(device_id, ward=make_ward("icu"), bed=device_id[-1])
    return Alarm.objects.create(device=device, type="occlusion", priority=priority, message=message,
                                source=AlarmSource.DEVICE, raised_at=timezone.now() - timedelta(minutes=20, seconds=5),
                                **fields)  # fmt: skip


@pytest.mark.django_db
def test_the_station_lists_the_wards_alarms_the_most_urgent_first_and_banners_the_first_unanswered(nurse_client):
    alarm_raised("PUMP_1", AlarmPriority.HIGH, "Line blocked", acknowledged_at=timezone.now())
    alarm_raised("PUMP_2", AlarmPriority.MEDIUM, "Battery low", escalation_level=1, escalated_at=timezone.now())
    response = nurse_client.get("/")
    station = response.context["station"]
    assert [(entry["label"], entry["described"]) for entry in station["alarms"]] == [
        ("High", "Bed 1 · Line blocked · for 20 min"),
        ("Medium", "Bed 2 · Battery low · for 20 min · ESCALATED to tier 1"),
    ]
    assert station["banner"]["described"] == "Bed 2 · Battery low · for 20 min · ESCALATED to tier 1"
    assert station["sounding"] and not station["silenced"], "an escalated medium alarm sounds"
    html = response.content.decode()
    assert 'data-priority="medium" >Medium alarm · Bed 2 · Battery low · for 20 min · ESCALATED to tier 1</p>' in html
    assert ">High: Bed 1 · Line blocked · for 20 min (acknowledged)</a></li>" in html
    assert '<span class="count" data-kind="high">1 high alarm</span> · <span class="count" data-kind="medium">' in html
    assert 'id="station-audio-silence" class="secondary" disabled  data-ward-label' in html, "shown, disabled"
    assert ">Silence this screen 2 min</button>" in html, "not live: no ward's silence promised"


@pytest.mark.django_db
def test_the_station_shows_the_wards_silence_and_its_sound_silenced(nurse_client):
    alarm_raised("PUMP_1", AlarmPriority.HIGH, "Line blocked")
    ward_silence(ward=make_ward("icu"), user=make_user("charge"), seconds=90, reason="Attending the alarm")
    response = nurse_client.get("/")
    assert response.context["station"]["silenced"], "every ward the page shows is silenced"
    assert (
        "Alarm sound silenced on every screen of ward icu by <bdi>charge</bdi> (<bdi>Attending the alarm</bdi>): 90 s "
        "left. A new high alarm sounds at once." in response.content.decode()
    )
    silences = page_data(response)["silences"]
    assert [(silence["ward"], silence["by"], silence["active"]) for silence in silences] == [("icu", "charge", True)]


@pytest.mark.django_db
def test_a_calm_ward_has_no_banner_no_list_and_no_sound_line(nurse_client):
    make_device("PUMP_1", ward=make_ward("icu"))
    response = nurse_client.get("/")
    station = response.context["station"]
    assert station["alarms"] == [] and station["banner"] is None and station["silences"] == []
    html = response.content.decode()
    assert 'id="station-alarm-banner" class="station-banner" data-priority="none" hidden' in html
    assert 'id="station-alarms" class="station-alarms card" hidden' in html


@pytest.mark.django_db
def test_monitoring_degraded_as_the_page_is_served_is_the_stations_technical_alarm(nurse_client):
    """No bridge has reported: the script's first render says so (bridge_watch.js at once), sounded; so does the
    server's page, in the words the script reads from it."""
    response = nurse_client.get("/")
    assert response.context["station"]["degraded"] and response.context["station"]["sounding"]
    html = response.content.decode()
    assert 'data-technical="true"' in html and 'class="station-technical" role="alert" \n' in html
    words = "Monitoring degraded: the server cannot hear the pumps. Check the pumps at the bedside."
    assert f'data-degraded="{words}">{words}</p>' in html
    assert page_data(response)["summaryParts"][0] == ["running", "infusing"], "the counts' words, for the script"
