"""The bridge's counters move when real messages flow, and reach its heartbeat (which /metrics re-exposes)."""

import pytest

from devices.models import BridgeStatus
from tests.factories import make_device
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


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
