"""The JSON endpoints: CSRF, sign-in, permissions, ward visibility, validation naming the field, audit."""

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Command, DeviceEvent, InfusionSession, ProgressSample
from devices.services.alarms import alarm_raise
from devices.services.confirmations import infusion_confirm
from devices.services.records import bridge_heartbeat
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource, CommandKind, SessionStatus
from tests.factories import make_device, make_order, make_user, make_ward, signed_in

pytestmark = pytest.mark.django_db

START_URL = "/api/devices/PUMP_0001/infusions/"
WIZARD = {
    "patient_name": "Ada Lovelace", "patient_age": "36", "patient_weight_kg": "60.5", "patient_bed": "4",
    "drug": "Saline 0.9%", "patient_allergies": "none", "rate_ml_h": "120", "volume_ml": "30",
    "bolus_enabled": "on", "bolus_volume_ml": "5", "confirm": "start",
}  # fmt: skip


@pytest.fixture
def client(nurse) -> Client:
    return signed_in(nurse)


def post(client: Client, url: str, data: dict | None = None, *, json: bool = False):
    token = client.cookies["csrftoken"].value
    if json:
        return client.post(url, data or {}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    return client.post(url, data or {}, HTTP_X_CSRFTOKEN=token)


READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


def running_session(device, user) -> InfusionSession:
    session = infusion_start(device_id=device.device_id, order=make_order(), user=user)
    device.refresh_from_db()  # the start took the pump's next seqs: a stale `event_seq` would take them again
    infusion_confirm(device=device, infusion_id=session.infusion_id, confirmed=True, parameters=READ_BACK,
                     confirmation={"confirmed": True})  # fmt: skip
    return session


def test_start_queues_the_order_in_wire_units_and_audits_the_user(client, device, nurse):
    response = post(client, START_URL, WIZARD)
    assert response.status_code == 201, response.content
    session = InfusionSession.objects.get(infusion_id=response.json()["session"]["infusionId"])
    assert session.status == SessionStatus.PENDING and session.started_by == nurse
    assert session.flow_rate_ml_min == 2.0, "120 mL/h on the page is 2 mL/min on the wire"
    assert session.planned_time_min == 15.0, "rate and volume fill in the time"
    assert session.patient_name == "Ada Lovelace" and not session.patient_skipped
    command = Command.objects.get(session=session)
    assert command.kind == CommandKind.START_INFUSION and command.payload["flowRateMlMin"] == 2.0
    assert DeviceEvent.objects.filter(kind="user.infusion_start", user=nurse).exists()


def test_any_two_of_rate_volume_time_fill_in_the_third(client, device):
    data = {**WIZARD, "rate_ml_h": "", "volume_ml": "100", "time_min": "50", "bolus_enabled": ""}
    response = post(client, START_URL, data)
    assert response.status_code == 201, response.content
    order = response.json()["session"]["order"]
    assert order["flowRateMlMin"] == 2.0 and order["plannedVolumeMl"] == 100 and order["plannedTimeMin"] == 50


def test_skipping_the_patient_is_recorded(client, device):
    response = post(client, START_URL, {**WIZARD, "patient_name": "", "patient_skipped": "1"})
    assert response.status_code == 201, response.content
    assert InfusionSession.objects.get().patient_skipped


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"rate_ml_h": "", "time_min": ""}, "rate_ml_h", "any two"),
        ({"bolus_volume_ml": "31"}, "bolus_volume_ml", "(half the volume)"),
        ({"rate_ml_h": "601"}, "rate_ml_h", "at most 600 mL/h"),
        ({"volume_ml": "501", "rate_ml_h": "500"}, "volume_ml", "at most 500 mL"),
        ({"time_min": "99"}, "time_min", "Rate × time must equal the volume"),
        ({"patient_name": ""}, "patient_name", "or choose Skip"),
        ({"drug": ""}, "drug", "Enter the drug"),
        ({"drug": "   ", "patient_skipped": "on", "patient_name": ""}, "drug", "Enter the drug"),
        ({"confirm": "yes"}, "confirm", 'Type "start"'),
        ({"rate_ml_h": "fast"}, "rate_ml_h", "number"),
    ],
)
def test_invalid_orders_name_the_wrong_field(client, device, change, field, words):
    response = post(client, START_URL, {**WIZARD, **change})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and body["code"] == "invalid_order", body
    assert words in body["message"], body["message"]
    assert not InfusionSession.objects.exists(), "nothing is started from an invalid order"


def test_start_accepts_json_and_refuses_a_second_active_infusion_with_409(client, device):
    assert post(client, START_URL, WIZARD, json=True).status_code == 201
    response = post(client, START_URL, WIZARD, json=True)
    assert response.status_code == 409 and response.json()["code"] == "session_active"


def test_post_without_csrf_token_is_refused(nurse, device):
    client = Client(enforce_csrf_checks=True)
    client.force_login(nurse)
    assert client.post(START_URL, WIZARD).status_code == 403
    assert not InfusionSession.objects.exists()


def test_signed_out_gets_401_and_watch_only_user_403(device, ward):
    client = Client()
    assert client.post(START_URL, WIZARD).status_code == 401
    assert client.get("/api/devices/PUMP_0001/history/").status_code == 401
    client.force_login(make_user("student", ward=ward, can_command=False))
    for url in (START_URL, "/api/devices/PUMP_0001/commands/", "/api/alarms/1/acknowledge/"):
        assert client.post(url, {"command": "stop"}).status_code == 403, url
    assert client.get("/api/devices/PUMP_0001/history/").status_code == 200, "watching needs no permission"


def test_other_wards_pumps_alarms_and_infusions_are_404(client, nurse):
    other = make_device("PUMP_ER", ward=make_ward("er"))
    session = infusion_start(device_id="PUMP_ER", order=make_order())
    other.refresh_from_db()
    alarm = alarm_raise(device=other, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)
    assert post(client, "/api/devices/PUMP_ER/infusions/", WIZARD).status_code == 404
    assert post(client, "/api/devices/PUMP_ER/commands/", {"command": "stop"}).status_code == 404
    assert post(client, f"/api/infusions/{session.infusion_id}/cancel/").status_code == 404
    assert post(client, f"/api/alarms/{alarm.pk}/acknowledge/").status_code == 404
    assert client.get("/api/devices/PUMP_ER/history/").status_code == 404
    assert client.get("/api/devices/PUMP_ER/events/").status_code == 404


def test_pause_resume_stop_queue_commands_for_the_bridge(client, device, nurse):
    shown = running_session(device, nurse).infusion_id
    now = timezone.now().isoformat()  # pressed just now (`askedAt`)
    response = post(client, "/api/devices/PUMP_0001/commands/", {"command": "pause", "reason": "line check",
                                                                  "infusionId": shown, "askedAt": now})  # fmt: skip
    assert response.status_code == 202, response.content
    assert response.json()["command"]["command"] == "PAUSE_INFUSION"
    assert response.json()["command"]["state"] == "queued" and response.json()["command"]["by"] == "nurse"
    assert Command.objects.filter(kind=CommandKind.PAUSE_INFUSION, created_by=nurse).exists()
    refused = post(client, "/api/devices/PUMP_0001/commands/", {"command": "resume", "infusionId": shown,
                                                                 "askedAt": now})  # fmt: skip
    assert refused.status_code == 409, "resume needs a paused infusion (the pump has not paused yet)"
    bad = post(client, "/api/devices/PUMP_0001/commands/", {"command": "explode"})
    assert bad.status_code == 400 and bad.json()["field"] == "command"


def test_cancel_a_pending_start_tells_the_pump_to_stop(client, device, nurse):
    session = infusion_start(device_id="PUMP_0001", order=make_order(), user=nurse)
    response = post(client, f"/api/infusions/{session.infusion_id}/cancel/")
    assert response.status_code == 200 and response.json()["session"]["status"] == "cancelled"
    assert Command.objects.filter(session=session, kind=CommandKind.STOP_INFUSION).exists()
    assert DeviceEvent.objects.filter(kind="session.cancelled", user=nurse).exists()


def test_acknowledge_records_who_and_when(client, device, nurse):
    alarm = alarm_raise(device=device, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)
    response = post(client, f"/api/alarms/{alarm.pk}/acknowledge/")
    assert response.status_code == 200
    assert response.json()["alarm"]["acknowledged"]["by"] == "nurse"
    assert DeviceEvent.objects.filter(kind="user.alarm_acknowledged", user=nurse).exists()
    assert post(client, "/api/alarms/999999/acknowledge/").status_code == 404


def test_history_returns_the_current_infusions_samples_oldest_first(client, device, nurse):
    session = running_session(device, nurse)
    now = timezone.now()
    for minute, volume in ((2, 4.0), (1, 2.0)):
        ProgressSample.objects.create(
            session=session, recorded_at=now + timezone.timedelta(minutes=minute), delivered_volume_ml=volume
        )
    body = client.get("/api/devices/PUMP_0001/history/").json()
    assert body["infusionId"] == session.infusion_id
    volumes = [point["deliveredVolumeMl"] for point in body["points"] if point["deliveredVolumeMl"] is not None]
    assert volumes == [2.0, 4.0]
    events = client.get("/api/devices/PUMP_0001/events/").json()["events"]
    assert events[0]["kind"] == "session.running" and events[-1]["kind"] == "user.infusion_start"


def test_get_on_a_command_endpoint_is_not_allowed(client, device):
    assert client.get(START_URL).status_code == 405


def test_bridge_status_says_whether_monitoring_is_alive(client):
    assert client.get("/api/bridge/").json()["alive"] is False
    bridge_heartbeat(broker_connected=True)
    body = client.get("/api/bridge/").json()
    assert body["alive"] is True and body["brokerConnected"] is True


def test_bridge_status_answers_503_json_while_the_database_is_away(client, monkeypatch):
    """Review 34, finding 1: with the database away every poll was Django's 500 page. The session is the first read
    (the sign-in check), so that is where the database fails; the answer vouches for nothing, and says why."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    def database_away(self):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(SessionStore, "load", database_away)
    response = client.get("/api/bridge/")
    assert response.status_code == 503, f"answered {response.status_code} while the database is away"
    body = response.json()
    assert body["alive"] is False and body["code"] == "database_unavailable", body


def test_infusion_detail_after_a_lost_connection(client, device, nurse):
    session = infusion_start(device_id="PUMP_0001", order=make_order(), user=nurse)
    body = client.get(f"/api/infusions/{session.infusion_id}/").json()
    assert body["session"]["status"] == "pending" and body["session"]["order"]["flowRateMlMin"] == 2.0
    assert client.get("/api/infusions/inf_nope/").status_code == 404


@pytest.mark.parametrize("path", ["/api/devices/%00/history/", "/api/devices/PUMP%000001/events/",
                                  "/api/devices/%00/infusions/", "/api/infusions/%00/", "/api/infusions/x%00y/",
                                  "/api/devices/PUMP_0001/history/?infusionId=%00"])  # fmt: skip
def test_an_id_with_nul_is_not_found_in_json_on_every_engine(client, device, path):
    """No pump's or infusion's id holds NUL, and PostgreSQL refuses NUL in text: such an id in a URL was a 500 there
    (the fuzz tests found it on PostgreSQL with a random seed)."""
    response = post(client, path) if path.endswith("/infusions/") else client.get(path)
    assert response.status_code in (200, 404) and response["Content-Type"] == "application/json"
    if response.status_code == 200:  # the pump's history with an unknown infusion: no points
        assert response.json()["points"] == []
