"""The bridge's counters move when real messages flow, and reach its heartbeat (which /metrics re-exposes)."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devices.models import BridgeStatus
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TOKEN = "scrape-token-for-tests"


def counter(bridge_name: str, family: str, label: str, value: str) -> float:
    stats = BridgeStatus.objects.get(name=bridge_name).stats
    samples = next((f["samples"] for f in stats.get("metrics", []) if f["name"] == family), [])
    return sum(v for name, labels, v in samples if name.endswith("_total") and labels.get(label) == value)


def test_received_and_rejected_counters_move_with_real_messages(shared_bridge, pump):
    make_device("PUMP_0001")
    name = shared_bridge.name
    received_before = counter(name, "pumpstream_bridge_messages_received", "kind", "status")
    rejected_before = counter(name, "pumpstream_bridge_messages_rejected", "reason", "bad_json")
    pump.publish("status", {"status": "online"})
    pump.publish("status", b"{not json")
    wait_until(
        lambda: (
            counter(name, "pumpstream_bridge_messages_received", "kind", "status") >= received_before + 1
            and counter(name, "pumpstream_bridge_messages_rejected", "reason", "bad_json") >= rejected_before + 1
        ),
        message="the bridge's heartbeat never showed the received and rejected counters moving",
    )


def scraped(client, sample: str, **labels: str) -> dict[str | None, float]:
    """One sample's values on /metrics (of these labels), by the bridge they are labelled with (None: none named)."""
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    return {
        found.labels.get("bridge"): found.value
        for family in text_string_to_metric_families(body)
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    }


def test_two_bridges_counters_reach_metrics_each_under_its_own_name(shared_bridge, pump, tmp_path, artifacts_dir,
                                                                     client, settings):  # fmt: skip
    """Two real bridge processes, each counting what it receives (here each from its own broker and pump: sharing
    the pumps by slots needs PostgreSQL; what is shown is the road from their heartbeats to /metrics): each one's
    rejects are on /metrics under its name, its own count and not the other's; one stopped is marked down at once
    (its farewell) while the other's series go on. On the code before, /metrics named no bridge and gave one
    bridge's counters for the system's, the other's out of sight."""
    settings.METRICS_TOKEN = TOKEN
    make_device("PUMP_0001")
    make_device("PUMP_0002")
    bad_json = {"sample": "pumpstream_bridge_messages_rejected_total", "reason": "bad_json"}
    other_broker = MosquittoBroker(tmp_path / "other-mosquitto", persistence=False).start()
    other = BridgeProcess(other_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir, name="bridge-other")
    other_pump = None
    try:
        other.start()
        other_pump = PumpClient(other_broker.url, "PUMP_0002")
        before = scraped(client, **bad_json)
        wanted = {shared_bridge.name: before.get(shared_bridge.name, 0) + 2, other.name: before.get(other.name, 0) + 3}
        for sender, times in ((pump, 2), (other_pump, 3)):
            for _ in range(times):
                sender.publish("status", b"{not json")
        wait_until(lambda: all(scraped(client, **bad_json).get(name, 0) >= n for name, n in wanted.items()),
                   message="/metrics never showed each bridge's rejects under its name")  # fmt: skip
        assert scraped(client, **bad_json) == wanted, "each bridge's own count, neither summed nor another's"
        assert scraped(client, "pumpstream_bridge_up") == {shared_bridge.name: 1, other.name: 1}
        other.stop()
        wait_until(lambda: scraped(client, "pumpstream_bridge_up") == {shared_bridge.name: 1, other.name: 0},
                   message="a bridge stopped was never marked down on /metrics")  # fmt: skip
        assert scraped(client, **bad_json)[shared_bridge.name] == wanted[shared_bridge.name]
    finally:
        other.stop()
        if other_pump is not None:
            other_pump.close()
        other_broker.stop()
