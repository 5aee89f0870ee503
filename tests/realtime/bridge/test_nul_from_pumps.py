"""NUL from pumps (review 10, a guard): a pump's message with `\\u0000` in a string, on PostgreSQL (text and jsonb
refuse NUL). The bridge must acknowledge it and go on (one bad message never stops the next), and record what it
could. It matters on PostgreSQL (make test-postgres runs tests/realtime/bridge; SQLite stores NUL).
"""

import json
import threading

import pytest

from devices.models import Alarm, DeadLetter, Device
from realtime.bridge.batch import BatchIngest
from realtime.bridge.commit import Committer
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device

pytestmark = pytest.mark.django_db


def committer() -> tuple[Committer, list[InboundMessage]]:
    acknowledged: list[InboundMessage] = []
    committer = Committer(ingest=BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)),
                          on_committed=lambda messages, _outcomes: acknowledged.extend(messages),
                          on_rollback=lambda: None, stop=threading.Event(), max_tries=3)  # fmt: skip
    return committer, acknowledged


@pytest.mark.parametrize("topic,body", [
    ("error", {"type": "occ\u0000lusion", "severity": "high"}),
    ("error", {"type": "occlusion", "severity": "high", "message": "line\u0000"}),
    ("status", {"status": "idle", "batteryLevel": 50, "firmwareVersion": "1.0\u0000"}),
], ids=["error-type", "error-message", "status-firmware"])  # fmt: skip
def test_a_pump_message_with_nul_is_acknowledged_and_the_next_one_applied(topic, body):
    make_device("PUMP_N")
    commit, acknowledged = committer()
    bad = InboundMessage(topic=f"devices/PUMP_N/{topic}", payload=json.dumps(body).encode())
    good = InboundMessage(topic="devices/PUMP_N/status", payload=b'{"status": "idle", "batteryLevel": 77}')
    commit.commit([bad, good])
    assert acknowledged == [bad, good], "both messages must be acknowledged"
    assert Device.objects.get(device_id="PUMP_N").battery_level == 77, "the next message must be applied"
    print(
        "OUTCOME",
        topic,
        list(Alarm.objects.values_list("type", "priority")),
        list(DeadLetter.objects.values_list("reason", "detail")),
    )
