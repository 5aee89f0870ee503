"""Escalation of unacknowledged alarms (issue 19): tiers reached on time, seen by the ward's stations, posted to
each tier's webhook signed with HMAC, retried on a 500, dead-lettered after its tries (raising a technical
alarm at the station), and stopped by an acknowledgement.

Real parts: a pump publishing on Mosquitto, the real bridge (with short tiers and a webhook per tier), the real
Daphne, real Socket.IO clients, and a real local HTTP server as the nurse-call receiver.
"""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from devices.models import Alarm, DeviceEvent, EscalationDelivery
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource, DeliveryState
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.sio import BrowserSession, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "test-only-escalation-secret-0123456789abcdef"
TIER_1_S, TIER_2_S = 1.5, 5.0


class Receiver(BaseHTTPRequestHandler):
    """The nurse-call system: records each post; answers with the next queued status (200 when none)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        with server.lock:
            status = server.answers.pop(0) if server.answers else server.default_status
            server.posts.append({"path": self.path, "headers": dict(self.headers), "body": body, "status": status,
                                 "at": time.monotonic()})  # fmt: skip
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.lock, server.posts, server.answers, server.default_status = threading.Lock(), [], [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def hook(receiver):
    """The receiver, emptied and answering 200 for this test."""
    with receiver.lock:
        receiver.posts.clear()
        receiver.answers.clear()
        receiver.default_status = 200
    return receiver


@pytest.fixture(scope="module")
def escalation_stack(tmp_path_factory, daphne_server, receiver, django_db_blocker, artifacts_dir):
    broker = MosquittoBroker(tmp_path_factory.mktemp("escalation-mosquitto"), persistence=False).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    env = {"ESCALATION_HIGH_S": f"{TIER_1_S},{TIER_2_S}", "ESCALATION_MEDIUM_S": "600",
           "ESCALATION_TIER_WEBHOOKS": f"{url}/tier1,{url}/tier2", "ESCALATION_WEBHOOK_SECRET": SECRET,
           "ESCALATION_WEBHOOK_TRIES": "3", "ESCALATION_WEBHOOK_RETRY_S": "1.0"}  # fmt: skip
    with django_db_blocker.unblock():
        bridge = BridgeProcess(broker.url, daphne_server.internal_url, artifacts_dir, **env).start()
    yield {"broker": broker, "bridge": bridge, "url": daphne_server.url}
    bridge.stop()
    broker.stop()


@pytest.fixture
def ward():
    e1 = make_ward("e1")
    for number in range(1, 6):
        make_device(f"ESC_PUMP_{number}", ward=e1, bed=str(number))
    return {"nurse": make_user("e1-nurse", ward=e1), "ward": e1}


@pytest.fixture
def station(escalation_stack, ward, clients):
    client = StreamClient(escalation_stack["url"], cookie=session_cookie(ward["nurse"])).connect()
    clients.append(client)
    client.emit(events.SUBSCRIBE_WARD, {"ward": "e1"})
    client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY)
    return client


def posts_for(receiver, path: str) -> list[dict]:
    with receiver.lock:
        return [post for post in receiver.posts if post["path"] == path]


def assert_signed(post: dict) -> dict:
    """The post's HMAC verifies with the shared secret; returns its JSON body."""
    headers = {name.lower(): value for name, value in post["headers"].items()}
    expected = hmac.new(SECRET.encode(), headers["x-pumpstream-timestamp"].encode() + b"." + post["body"],
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert hmac.compare_digest(headers["x-pumpstream-signature"], f"sha256={expected}"), "signature does not verify"
    assert abs(int(headers["x-pumpstream-timestamp"]) - time.time()) < 30
    return json.loads(post["body"])


def raise_high(stack, device_id: str) -> PumpClient:
    pump = PumpClient(stack["broker"].url, device_id)
    pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
    return pump


def charge_nurse(url: str, username: str, ward, clients: list) -> StreamClient:
    """A connected charge nurse (group `charge_nurse`, tier 1's default) of `ward`."""
    user = make_user(username, ward=ward)
    user.groups.add(Group.objects.get_or_create(name="charge_nurse")[0])
    client = StreamClient(url, cookie=session_cookie(user)).connect()
    client.user = user
    clients.append(client)
    return client


def test_an_unacknowledged_high_alarm_escalates_tier_by_tier_with_signed_webhooks(escalation_stack, station, hook,
                                                                                  ward, clients):  # fmt: skip
    charge = charge_nurse(escalation_stack["url"], "e1-charge", ward["ward"], clients)
    other = make_ward("e2")
    make_device("ESC_E2_PUMP", ward=other)
    elsewhere = charge_nurse(escalation_stack["url"], "e2-charge", other, clients)
    moved = charge_nurse(escalation_stack["url"], "e1-charge-moved", ward["ward"], clients)
    ward["ward"].members.remove(moved.user)  # moved to another ward after opening the socket
    started = time.monotonic()  # before the cause: a late delivery of the raise cannot shorten what is measured
    pump = raise_high(escalation_stack, "ESC_PUMP_1")
    try:
        raised = station.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["state"] == "active")
        assert raised["alarm"]["escalation"] is None
        tier1 = station.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["escalation"], timeout=6)
        waited = time.monotonic() - started
        assert tier1["alarm"]["escalation"]["level"] == 1 and tier1["escalated"]["tier"] == 1, tier1
        assert waited >= TIER_1_S, f"escalated {waited:.1f} s after the pump's alarm, before tier 1's {TIER_1_S} s"
        paged = charge.events.wait_for(lambda e, d: e == events.ALARM_ESCALATED, timeout=5)
        assert paged["deviceId"] == "ESC_PUMP_1" and paged["escalated"]["tier"] == 1, paged
        post = wait_until(lambda: posts_for(hook, "/tier1"), timeout=5, message="tier 1's webhook never came")[0]
        body = assert_signed(post)
        assert body["tier"] == 1 and body["deviceId"] == "ESC_PUMP_1" and body["ward"] == "e1", body
        assert body["alarm"]["id"] == raised["alarm"]["id"] and body["alarm"]["priority"] == "high", body
        tier2 = station.events.wait_for(
            lambda e, d: e == events.WARD_ALARM and (d["alarm"]["escalation"] or {}).get("level") == 2, timeout=8
        )
        assert tier2["escalated"]["tier"] == 2
        assert_signed(wait_until(lambda: posts_for(hook, "/tier2"), timeout=5, message="no tier 2 webhook")[0])
        alarm = Alarm.objects.get(pk=raised["alarm"]["id"])
        assert alarm.escalation_level == 2
        deliveries = EscalationDelivery.objects.filter(alarm=alarm)
        wait_until(lambda: all(d.state == DeliveryState.DELIVERED for d in deliveries.all()), message="not delivered")
        assert DeviceEvent.objects.filter(kind="alarm.escalated", device__device_id="ESC_PUMP_1").count() == 2
        assert elsewhere.events.named(events.ALARM_ESCALATED) == [], "another ward's charge nurse was paged"
        assert moved.events.named(events.ALARM_ESCALATED) == [], "a charge nurse moved off the ward was paged"
        tiers = [d["escalated"]["tier"] for d in charge.events.named(events.ALARM_ESCALATED)]
        assert tiers == [1], f"tier 2 goes to its own group (ward_manager), not to charge nurses: {tiers}"
    finally:
        pump.close()


def test_a_webhook_answering_500_is_retried_until_delivered(escalation_stack, station, hook):
    hook.answers.extend([500])
    pump = raise_high(escalation_stack, "ESC_PUMP_2")
    try:
        tries = wait_until(lambda: len(posts_for(hook, "/tier1")) >= 2 and posts_for(hook, "/tier1"), timeout=8,
                           message="the webhook was not retried after a 500")  # fmt: skip
        assert [post["status"] for post in tries[:2]] == [500, 200]
        first, second = (json.loads(post["body"])["deliveryId"] for post in tries[:2])
        assert first == second, "a retry is the same delivery"
        assert tries[1]["at"] - tries[0]["at"] >= 0.9, "retried before ESCALATION_WEBHOOK_RETRY_S"
        wait_until(lambda: EscalationDelivery.objects.get(pk=first).state == DeliveryState.DELIVERED,
                   message="a delivery answered 200 on its second try is not recorded delivered")  # fmt: skip
        assert EscalationDelivery.objects.get(pk=first).tries == 2
    finally:
        pump.close()


def test_a_webhook_that_keeps_failing_is_dead_lettered_and_alarms_the_station(escalation_stack, station, hook):
    hook.default_status = 500
    pump = raise_high(escalation_stack, "ESC_PUMP_3")
    try:
        failed = station.events.wait_for(
            lambda e, d: e == events.WARD_ALARM and d["alarm"]["key"] == "escalation_failed", timeout=12
        )
        assert failed["deviceId"] == "ESC_PUMP_3" and failed["alarm"]["priority"] == "medium", failed
        assert "Paging tier 1 failed after 3 tries" in failed["alarm"]["message"], failed
        tier1 = EscalationDelivery.objects.get(alarm__device__device_id="ESC_PUMP_3", tier=1)
        assert tier1.state == DeliveryState.DEAD and tier1.tries == 3 and tier1.last_error == "HTTP 500"
        time.sleep(2.5)  # nothing more is tried for a dead letter
        assert len(posts_for(hook, "/tier1")) == 3, "a dead-lettered delivery was tried again"
    finally:
        pump.close()


def test_acknowledging_stops_escalation_and_withdraws_the_page(escalation_stack, station, hook, ward):
    hook.default_status = 500
    nurse = BrowserSession(escalation_stack["url"], "e1-nurse")  # signed in already: acknowledging is one click
    pump = raise_high(escalation_stack, "ESC_PUMP_4")
    try:
        raised = station.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["state"] == "active")
        wait_until(lambda: posts_for(hook, "/tier1"), timeout=6, message="tier 1 never paged")
        nurse.post(f"/api/alarms/{raised['alarm']['id']}/acknowledge/")
        acknowledged = time.monotonic()
        delivery = EscalationDelivery.objects.filter(alarm_id=raised["alarm"]["id"])
        wait_until(lambda: delivery.get().state == DeliveryState.WITHDRAWN, timeout=5,
                   message="the failed page was not withdrawn after acknowledging")  # fmt: skip
        time.sleep(TIER_2_S)  # past tier 2's time
        late = [post for post in posts_for(hook, "/tier1") if post["at"] > acknowledged + 0.5]
        assert late == [], f"the page was retried after the alarm was acknowledged ({len(late)} posts)"
        assert posts_for(hook, "/tier2") == [], "an acknowledged alarm escalated to tier 2"
        assert Alarm.objects.get(pk=raised["alarm"]["id"]).escalation_level == 1
    finally:
        pump.close()


def test_an_alarm_acknowledged_in_time_is_never_escalated(escalation_stack, station, hook):
    """The alarm is raised as the bridge raises one, and acknowledged over HTTP while the bridge waits paused (idle,
    holding no lock), so that its escalation check can only find it acknowledged: what is tested is that an
    acknowledged alarm is never escalated, not how fast the test's acknowledgement travels (a slow run took longer
    than tier 1's 1.5 s from the pump's publish to the acknowledgement's commit)."""
    nurse = BrowserSession(escalation_stack["url"], "e1-nurse")
    bridge = escalation_stack["bridge"]
    bridge.pause_idle()
    try:
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id="ESC_PUMP_5"), type="occlusion", priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
        raised = station.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["state"] == "active")
        nurse.post(f"/api/alarms/{raised['alarm']['id']}/acknowledge/")
        assert Alarm.objects.get(pk=raised["alarm"]["id"]).acknowledged_at is not None
    finally:
        bridge.resume()
    time.sleep(TIER_1_S + 1.5)  # the bridge's escalation check has seen it by now
    assert hook.posts == [], "an alarm acknowledged before its tier was paged"
    assert not EscalationDelivery.objects.exists()
    assert Alarm.objects.get(pk=raised["alarm"]["id"]).escalation_level == 0
