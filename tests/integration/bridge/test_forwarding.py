"""Forwarded events end to end: pump → Mosquitto → bridge → Daphne → a subscribed python-socketio client.

Every message kind reaches a watching client as the contract's events, and the pump's `seq` seen by the
client increases by one with no gap, whichever process recorded the change (Daphne for the nurse's
start, the bridge for everything the pump says).
"""

import pytest

from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.sio import BrowserSession, StreamClient

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEVICE = "PUMP_FWD"
ORDER_FORM = {"rate_ml_h": 120, "volume_ml": 30, "drug": "Saline", "patient_skipped": "on", "confirm": "start"}


@pytest.fixture(scope="module")
def forwarding_bridge(broker, daphne_server, django_db_setup, django_db_blocker, artifacts_dir):
    """A bridge forwarding into the session's Daphne (same database, same internal secret)."""
    with django_db_blocker.unblock():
        process = BridgeProcess(broker.url, daphne_server.internal_url, artifacts_dir).start()
    yield process
    process.stop()


@pytest.fixture
def watcher(daphne_server, forwarding_bridge):
    """A signed-in nurse's browser and Socket.IO client subscribed to the pump, and the pump itself."""
    ward = make_ward()
    make_user(ward=ward)
    make_device(DEVICE, ward=ward)
    browser = BrowserSession(daphne_server.url, "nurse")
    client = StreamClient(daphne_server.url, cookie=browser.cookie_header).connect()
    reply, subscribed = client.subscribe(DEVICE)
    assert reply == events.STREAM_SUBSCRIBED, f"subscribe refused: {subscribed}"
    wait_until(lambda: forwarding_bridge_connected(client), message="the bridge never reached Daphne")
    pump = PumpClient(forwarding_bridge.env["MQTT_URL"], DEVICE)
    yield browser, client, pump, subscribed["seq"]
    pump.close()
    client.close()


def forwarding_bridge_connected(client: StreamClient) -> bool:
    from devices.models import BridgeStatus

    return any((status.stats or {}).get("internalConnected") for status in BridgeStatus.objects.all())


def wait_event(client: StreamClient, name: str, check=lambda body: True, *, timeout: float = 10.0) -> dict:
    """The first `name` event of the pump for which `check(payload)` holds."""
    return client.events.wait_for(
        lambda event, data: event == name and data.get("deviceId") == DEVICE and check(data), timeout=timeout
    )


def command_named(client: StreamClient, kind: str, state: str) -> dict:
    return wait_event(client, events.DEVICE_COMMAND,
                      lambda d: d["command"]["command"] == kind and d["command"]["state"] == state)  # fmt: skip


def assert_seq_contiguous(client: StreamClient, after: int) -> list[tuple[str, int]]:
    seen = [(event, data["seq"]) for event, data in client.events.device_events(DEVICE) if data["seq"] > after]
    seqs = [seq for _, seq in seen]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), f"seq must increase by one: {seen}"
    return seen


def test_every_message_kind_reaches_the_subscriber_as_the_contracts_events(watcher):
    browser, client, pump, first_seq = watcher
    pump.publish("status", {"status": "online", "batteryLevel": 80})
    wait_event(client, events.DEVICE_STATUS, lambda d: d["status"]["batteryLevel"] == 80)

    browser.post(f"/api/devices/{DEVICE}/infusions/", ORDER_FORM, expect=(201,))
    pending = wait_event(client, events.DEVICE_SESSION, lambda d: d["session"]["status"] == "pending")
    infusion_id = pending["session"]["infusionId"]
    command_named(client, "START_INFUSION", "sent")
    start = wait_until(lambda: pump.commands, message="the pump never received START_INFUSION")[0]["payload"]

    pump.publish("status", {"status": "received_start_command"})
    command_named(client, "START_INFUSION", "delivered")
    parameters = {"flowRateMlMin": start["flowRateMlMin"], "plannedVolumeMl": start["plannedVolumeMl"],
                  "plannedTimeMin": start["plannedTimeMin"], "bolusEnabled": start["bolus"]["enabled"],
                  "bolusVolumeMl": start["bolus"]["volumeMl"]}  # fmt: skip
    pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": parameters})
    confirmed = wait_event(client, events.DEVICE_INFUSION_CONFIRMED)
    assert confirmed["confirmation"]["infusionId"] == infusion_id and confirmed["confirmation"]["confirmed"] is True
    wait_event(client, events.DEVICE_SESSION, lambda d: d["session"]["status"] == "running")
    command_named(client, "START_INFUSION", "done")

    for delivered in (1.0, 2.0, 3.0):
        pump.publish("progress", {"deliveredVolumeMl": delivered, "volumeRemainingMl": 30 - delivered,
                                  "flowRate": 2.0, "status": "running"})  # fmt: skip
    progress = wait_event(client, events.DEVICE_PROGRESS, lambda d: d["progress"]["deliveredVolumeMl"] == 3.0)
    assert progress["progress"]["infusionId"] == infusion_id and progress["progress"]["receivedAt"]

    pump.publish("error", {"type": "occlusion", "severity": "HIGH", "message": "Downstream occlusion"})
    alarm = wait_event(client, events.DEVICE_ALARM, lambda d: d["alarm"]["type"] == "occlusion")
    assert (alarm["alarm"]["priority"], alarm["alarm"]["state"]) == ("high", "active")
    assert wait_event(client, events.DEVICE_ERROR)["error"]["type"] == "occlusion"
    assert wait_event(client, events.DEVICE_NOTIFICATION)["notification"]["priority"] == "critical"
    pump.publish("error", {"type": "occlusion_cleared"})
    wait_event(client, events.DEVICE_ALARM, lambda d: d["alarm"]["state"] == "cleared")

    pump.publish("actions", {"action": "MANUAL_PAUSE", "infusionId": infusion_id})
    wait_event(client, events.DEVICE_SESSION, lambda d: d["session"]["status"] == "paused")
    wait_event(client, events.DEVICE_STATUS, lambda d: d["status"]["pumpState"] == "paused")
    pump.publish("actions", {"action": "MANUAL_RESUME", "infusionId": infusion_id})
    wait_event(client, events.DEVICE_SESSION, lambda d: d["session"]["status"] == "running" and d["seq"] > alarm["seq"])

    pump.publish("completion", {"completed": True, "infusionId": infusion_id, "summary": {"totalVolumeMl": 30}})
    completed = wait_event(client, events.DEVICE_INFUSION_COMPLETED)
    wait_event(client, events.DEVICE_SESSION, lambda d: d["session"]["status"] == "completed")
    wait_event(
        client, events.DEVICE_STATUS, lambda d: d["status"]["pumpState"] == "idle" and d["seq"] > completed["seq"]
    )

    seen = assert_seq_contiguous(client, first_seq)
    kinds = {event for event, _ in seen}
    traffic = set(events.DEVICE_EVENTS) - set(events.ADMINISTRATIVE_DEVICE_EVENTS)  # no pump deletes itself
    assert kinds >= traffic, f"missing events: {traffic - kinds}"


def test_a_burst_of_progress_is_coalesced_to_the_newest_with_seq_still_contiguous(watcher):
    _, client, pump, first_seq = watcher
    for seq in range(200):
        pump.client.publish(f"devices/{DEVICE}/progress", f'{{"deliveredVolumeMl": {seq / 10}, "seq": {seq}, '
                            f'"bootId": "burst", "status": "running"}}', qos=1)  # fmt: skip
    pump.publish("progress", {"deliveredVolumeMl": 99.0, "seq": 200, "bootId": "burst", "status": "running"})
    wait_event(client, events.DEVICE_PROGRESS, lambda d: d["progress"]["deliveredVolumeMl"] == 99.0)
    progress = client.events.named(events.DEVICE_PROGRESS, device_id=DEVICE)
    volumes = [item["progress"]["deliveredVolumeMl"] for item in progress]
    assert volumes == sorted(volumes), f"progress must never go backwards for a watcher: {volumes}"
    assert len(progress) <= 201, "at most one device:progress per message"
    assert_seq_contiguous(client, first_seq)
