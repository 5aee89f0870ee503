"""A pump moved to another ward takes none of the records of the ward it left there, on any road (review 46, H2).

Through Mosquitto, the bridge and Daphne: ward B's nurse orders Morphine for Jane (bed 4B-West) from the wizard's
endpoint, the pump confirms and infuses, she stops it, the pump obeys; an administrator moves the idle pump to the ICU.
The ICU's clinician, never of ward B, read the pump's event log (its infusion ids), then Jane's name, bed and drug and
her delivery curve by those ids, and the monitor's page rendered her infusion; ward B's nurse got 404 for it. Now the
ICU gets none of it, by HTTP, the monitor's page, a Socket.IO subscription's snapshot or the ward feed, and ward B
reads its patient's record and curve by the infusion's id."""

import json
import urllib.error

import pytest
from django.utils import timezone

from devices.models import Device, InfusionSession
from devices.services.registration import pump_registration_save
from devices.states import ACTIVE_SESSION_STATUSES
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.integration.realtime.test_socketio import connected
from tests.support.bridge import PumpClient, wait_until
from tests.support.sio import BrowserSession

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PUMP = "PUMP_MOVED_1"
JANE = {"patient_name": "Jane WardB", "patient_bed": "4B-West", "patient_allergies": "penicillin", "drug": "Morphine",
        "rate_ml_h": "60", "volume_ml": "10", "confirm": "start", "idempotencyKey": "jane-1"}  # fmt: skip
# Each long enough never to turn up by chance in a page's random tokens (its CSRF token, its CSP nonce): "4B" alone
# did once (ci56, "the ICU's monitor page of the pump shows ward B's ['4B']")
WARD_B_SAYS = ("Jane WardB", "4B-West", "Morphine", "penicillin")


def get(browser: BrowserSession, path: str) -> tuple[int, str]:
    """GET as the signed-in browser: (status, body)."""
    try:
        response = browser.opener.open(f"{browser.base_url}{path}")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    return response.status, response.read().decode()


def jane_given_and_stopped(url: str, pump: PumpClient) -> str:
    """Ward B's order for Jane, confirmed, infused and stopped from the monitor: its infusion id."""
    nurse_b = BrowserSession(url, "nurse_b")
    nurse_b.post(f"/api/devices/{PUMP}/infusions/", JANE, expect=(201,))
    start = wait_until(lambda: [c for c in pump.commands if c.get("command") == "START_INFUSION"],
                       message="the START never reached the pump")[0]  # fmt: skip
    infusion_id = start["payload"]["infusionId"]
    pump.publish("infusion", {"confirmed": True, "infusionId": infusion_id})
    for delivered in (0.5, 1.0):
        pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 1.0,
                                  "deliveredVolumeMl": delivered, "volumeRemainingMl": 10 - delivered})  # fmt: skip
    wait_until(lambda: InfusionSession.objects.filter(infusion_id=infusion_id, status="running").exists(),
               message="the pump's confirmation never ran the order")  # fmt: skip
    asked_at = timezone.now().isoformat()
    stop = {"command": "stop", "infusionId": infusion_id, "idempotencyKey": "stop-1", "askedAt": asked_at}
    nurse_b.post(f"/api/devices/{PUMP}/commands/", stop, expect=(202,))
    wait_until(lambda: [c for c in pump.commands if c.get("command") == "STOP_INFUSION"],
               message="the STOP never reached the pump")  # fmt: skip
    pump.publish("status", {"status": "idle"})
    wait_until(lambda: InfusionSession.objects.exclude(status__in=ACTIVE_SESSION_STATUSES)
               .filter(infusion_id=infusion_id).exists(), message="the stopped infusion never ended")  # fmt: skip
    return infusion_id


def moved_to_the_icu() -> None:
    device = Device.objects.get(device_id=PUMP)
    device.ward = make_ward("icu")
    pump_registration_save(device=device, fields={"ward"}, user=make_user("admin", is_staff=True, can_command=False))


def test_a_pump_moved_to_the_icu_shows_it_nothing_of_ward_bs_patient(daphne_server, realtime_broker, realtime_bridge,
                                                                      clients):  # fmt: skip
    make_device(PUMP, ward=make_ward("ward_b"), bed="4")
    make_user("nurse_b", ward=make_ward("ward_b"))
    make_user("clinician", ward=make_ward("icu"))
    pump = PumpClient(realtime_broker.url, PUMP)
    try:
        pump.publish("status", {"status": "online"})
        wait_until(lambda: Device.objects.get(device_id=PUMP).last_seen_at, message="the pump was never heard")
        infusion_id = jane_given_and_stopped(daphne_server.url, pump)
        moved_to_the_icu()
        icu = BrowserSession(daphne_server.url, "clinician")
        status, log = get(icu, f"/api/devices/{PUMP}/events/")
        assert status == 200 and infusion_id not in log, f"the ICU's event log of the pump names ward B's: {log[:400]}"
        status, detail = get(icu, f"/api/infusions/{infusion_id}/")
        assert status == 404, f"the ICU reads ward B's patient: {detail[:300]}"
        status, history = get(icu, f"/api/devices/{PUMP}/history/?infusionId={infusion_id}")
        assert json.loads(history)["points"] == [], f"the ICU reads Jane's delivery curve: {history[:300]}"
        status, latest = get(icu, f"/api/devices/{PUMP}/history/")
        assert json.loads(latest)["infusionId"] is None, "the monitor's latest infusion of the pump is ward B's"
        status, page = get(icu, f"/devices/{PUMP}/")
        assert status == 200
        shown = [said for said in (*WARD_B_SAYS, infusion_id) if said in page]
        assert not shown, f"the ICU's monitor page of the pump shows ward B's {shown}"

        client = connected(daphne_server.url, clients, cookie=icu.cookie_header)
        event, subscribed = client.subscribe(PUMP)
        assert event == events.STREAM_SUBSCRIBED, subscribed
        client.emit(events.SUBSCRIBE_WARD, {"ward": "*"})
        feed = client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY)
        received = json.dumps(client.events.items)
        shown = [said for said in (*WARD_B_SAYS, infusion_id) if said in received]
        assert not shown, f"the ICU's subscription (snapshot, ward feed) carried ward B's {shown}"
        assert [p["deviceId"] for p in feed["pumps"]] == [PUMP], "the pump is the ICU's now"

        ward_b = BrowserSession(daphne_server.url, "nurse_b")
        status, detail = get(ward_b, f"/api/infusions/{infusion_id}/")
        assert status == 200, "ward B lost its own patient's record when the pump left"
        assert json.loads(detail)["session"]["patient"] == "Jane WardB"
        status, history = get(ward_b, f"/api/devices/{PUMP}/history/?infusionId={infusion_id}")
        assert status == 200 and json.loads(history)["points"], f"ward B lost Jane's delivery curve: {history[:300]}"
    finally:
        pump.close()
