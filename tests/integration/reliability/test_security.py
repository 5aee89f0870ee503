"""Security, one test per surface: anonymous refused everywhere, permissions, wards, CSRF, audit, no patient in logs."""

import logging

import pytest
import socketio
import websocket
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, get_resolver
from django.utils import timezone

from devices.models import Alarm, DeviceEvent, InfusionSession
from devices.services.alarms import alarm_raise
from devices.states import AlarmPriority, AlarmSource, CommandState
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import wait_until
from tests.support.reliability import infusing_pumps
from tests.support.sio import StreamClient

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"patient_name": "Zebediah Quillfeather", "patient_allergies": "Penicillin-XQ7 anaphylaxis"}
WIZARD = {**PATIENT, "patient_age": "71", "patient_weight_kg": "80", "patient_bed": "7", "drug": "Saline 0.9%",
          "rate_ml_h": "120", "volume_ml": "30", "confirm": "start"}  # fmt: skip
# What may answer without a sign-in: logout only signs out; favicon only redirects to the static icon (checked below).
PUBLIC = {"healthz", "readyz", "login", "logout", "favicon"}


def every_route(resolver=None, prefix: str = "") -> list[tuple[str, str]]:
    """(name, sample URL) of every route the site serves, the admin's included (so new endpoints are covered)."""
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLPattern):
            sample = pattern.replace("<int:alarm_id>", "1").replace("<str:", "<").replace("^", "").replace("$", "")
            for name in ("device_id", "infusion_id", "path", "key"):
                sample = sample.replace(f"<{name}>", "PUMP_SEC")
            if "<" not in sample and "(?P" not in sample:
                routes.append((entry.name or pattern, "/" + sample))
        else:
            routes += every_route(entry, pattern)
    return routes


@pytest.fixture
def ward_pump():
    """PUMP_SEC in "icu" with an active alarm and a running infusion."""
    running = infusing_pumps(["PUMP_SEC"], ward_code="icu")
    device = InfusionSession.objects.get(infusion_id=running["PUMP_SEC"]).device
    alarm = alarm_raise(device=device, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                        message="Occlusion", now=timezone.now())  # fmt: skip
    return device, running["PUMP_SEC"], alarm


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_http_route_refuses_anonymous_users(ward_pump, method):
    client = Client()
    served = []
    for name, url in every_route():
        if name in PUBLIC:
            continue
        response = getattr(client, method)(url.replace("/1/acknowledge/", f"/{ward_pump[2].pk}/acknowledge/"))
        served.append(url)
        refused = response.status_code in (401, 403, 404, 405) or (
            response.status_code == 302 and "login" in response["Location"]
        )
        assert refused, f"anonymous {method.upper()} {url} answered {response.status_code}"
        assert b"PUMP_SEC" not in response.content or response.status_code == 404, f"{url} leaked the pump"
    assert len(served) >= 12, f"too few routes found: {served}"
    icon = getattr(client, method)("/favicon.ico")
    assert icon.status_code == 302 and icon["Location"].startswith(settings.STATIC_URL), icon


@pytest.mark.integration
def test_socketio_and_channels_refuse_anonymous_users(daphne_server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        StreamClient(daphne_server.url).connect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        StreamClient(daphne_server.url, cookie="sessionid=forged-session-key").connect()
    with pytest.raises(websocket.WebSocketException):
        socket = websocket.create_connection(daphne_server.url.replace("http", "ws") + "/ws/devices/", timeout=5)
        socket.recv()  # accepted sockets would wait here; a refused one is closed with 4401


POSTS = {  # endpoint: (url template, form)
    "start": ("/api/devices/PUMP_SEC/infusions/", WIZARD),
    "pause": ("/api/devices/PUMP_SEC/commands/", {"command": "pause", "infusionId": "{infusion}"}),
    "stop": ("/api/devices/PUMP_SEC/commands/", {"command": "stop", "infusionId": "{infusion}"}),
    "cancel": ("/api/infusions/{infusion}/cancel/", {}),
    "acknowledge": ("/api/alarms/{alarm}/acknowledge/", {}),
}


def signed_in(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    client.get("/")  # the CSRF cookie, as the page sets it
    return client


def post(client: Client, endpoint: str, ward_pump, *, token: bool = True):
    url, form = POSTS[endpoint]
    url = url.format(infusion=ward_pump[1], alarm=ward_pump[2].pk)
    form = {**form, "infusionId": ward_pump[1]} if "infusionId" in form else form  # the infusion the page showed
    form = {**form, "askedAt": timezone.now().isoformat()} if "command" in form else form  # pressed just now
    headers = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value} if token and "csrftoken" in client.cookies else {}
    return client.post(url, form, **headers)


@pytest.mark.parametrize("endpoint", sorted(POSTS))
def test_commands_and_acknowledgements_need_their_permission(ward_pump, endpoint):
    watcher = make_user("watch-only", ward=make_ward("icu"), can_command=False)
    response = post(signed_in(watcher), endpoint, ward_pump)
    assert response.status_code == 403, f"a user without the permission got {response.status_code} on {endpoint}"


@pytest.mark.parametrize("endpoint", sorted(POSTS))
def test_a_user_cannot_command_or_see_a_pump_outside_their_wards(ward_pump, endpoint):
    outsider = signed_in(make_user("er-nurse", ward=make_ward("er")))
    assert post(outsider, endpoint, ward_pump).status_code == 404, f"{endpoint} of another ward's pump"
    for url in ("/devices/PUMP_SEC/", "/devices/PUMP_SEC/start/", "/api/devices/PUMP_SEC/history/",
                "/api/devices/PUMP_SEC/events/", f"/api/infusions/{ward_pump[1]}/"):  # fmt: skip
        assert outsider.get(url).status_code == 404, f"GET {url} showed another ward's pump"
    assert b"PUMP_SEC" not in outsider.get("/").content, "the overview listed another ward's pump"


@pytest.mark.parametrize("endpoint", sorted(POSTS))
def test_csrf_is_enforced_on_every_endpoint(ward_pump, endpoint):
    nurse = signed_in(make_user("csrf-nurse", ward=make_ward("icu")), csrf=True)
    assert post(nurse, endpoint, ward_pump, token=False).status_code == 403, f"{endpoint} accepted a forged POST"
    assert post(nurse, endpoint, ward_pump).status_code != 403, f"{endpoint} refused a genuine POST"


def test_csrf_is_enforced_on_sign_in_and_sign_out():
    make_user("form-nurse")
    client = Client(enforce_csrf_checks=True)
    assert (
        client.post("/accounts/login/", {"username": "form-nurse", "password": "pw-for-tests-only"}).status_code == 403
    )
    client.force_login(make_user("signed-in"))
    assert client.post("/accounts/logout/").status_code == 403, "a forged sign-out was accepted"


def test_every_command_and_acknowledgement_is_audited_with_its_user(ward_pump):
    nurse = make_user("audited", ward=make_ward("icu"))
    client = signed_in(nurse)
    for endpoint in ("pause", "stop", "acknowledge"):
        before = DeviceEvent.objects.filter(user=nurse).count()
        assert post(client, endpoint, ward_pump).status_code < 400
        assert DeviceEvent.objects.filter(user=nurse).count() > before, f"{endpoint} left no audit event with its user"
    assert Alarm.objects.get(pk=ward_pump[2].pk).acknowledged_by == nurse
    InfusionSession.objects.filter(device=ward_pump[0]).update(status="stopped")  # a fresh start, then its cancel
    response = post(client, "start", ward_pump)
    assert response.status_code == 201, response.content
    assert DeviceEvent.objects.filter(user=nurse, kind="user.infusion_start").exists()
    before = DeviceEvent.objects.filter(user=nurse).count()
    infusion = response.json()["session"]["infusionId"]
    assert client.post(f"/api/infusions/{infusion}/cancel/").status_code < 400
    assert DeviceEvent.objects.filter(user=nurse).count() > before, "cancel left no audit event with its user"


@pytest.mark.integration
def test_patient_details_never_reach_the_logs_at_info_level(own_broker, own_bridge, caplog):
    make_device("PUMP_SEC", ward=make_ward("icu"), max_rate_ml_min=10, max_volume_ml=500)
    client = signed_in(make_user("private-nurse", ward=make_ward("icu")))
    with caplog.at_level(logging.INFO):
        response = client.post("/api/devices/PUMP_SEC/infusions/", WIZARD)
        assert response.status_code == 201, response.content
        infusion = response.json()["session"]["infusionId"]
        sent = [CommandState.SENT, CommandState.FAILED]
        commands = lambda: InfusionSession.objects.get(infusion_id=infusion).commands  # noqa: E731
        wait_until(lambda: commands().filter(state__in=sent).exists(), message="the bridge never sent the START")
    logs = {"this process": caplog.text, "the bridge": own_bridge.log_path.read_text(errors="replace")}
    for where, text in logs.items():
        assert "command published" in text or where == "this process", "the bridge's log is not being captured"
        for value in PATIENT.values():
            assert value not in text, f"patient detail {value!r} in {where}'s log"
