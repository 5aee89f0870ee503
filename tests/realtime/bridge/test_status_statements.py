"""The bridge's one-message path (status, alarms, confirmations) in statements: each is a round trip on PostgreSQL.

On PostgreSQL every statement waits for the server process; on a busy host that wait, not the SQL, set the
bridge's pace for statuses (about 50/s with 16 statements a status). This counts them, on both engines.
"""

import json
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.models import Device, DeviceEvent, MessageReceipt, RetainedMessage
from realtime.bridge.batch import BatchIngest
from realtime.bridge.commit import Committer
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device

pytestmark = pytest.mark.django_db
STATUSES = 50
MAX_STATEMENTS_PER_STATUS = 10  # was 16: a savepoint of the service's own and a read-lock-update of the digest


def status(seq: int, *, retain: bool = False) -> InboundMessage:
    body = json.dumps({"status": "testing", "seq": seq, "bootId": "boot-s", "timestamp": seq}).encode()
    return InboundMessage(topic="devices/PUMP_S/status", payload=body, retain=retain)


def committer() -> tuple[Committer, list[InboundMessage]]:
    acknowledged: list[InboundMessage] = []
    committer = Committer(
        ingest=BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)), stop=threading.Event(), max_tries=3,
        on_committed=lambda messages, _outcomes: acknowledged.extend(messages),
    )  # fmt: skip
    return committer, acknowledged


def test_a_status_costs_at_most_ten_statements():
    make_device("PUMP_S")
    commit, acknowledged = committer()
    commit.commit([status(0)])  # the first report of a boot also stores the boot: not the steady state
    with CaptureQueriesContext(connection) as queries:
        commit.commit([status(seq) for seq in range(1, STATUSES + 1)])
    per_status = (len(queries.captured_queries) - 2) / STATUSES  # less the batch's BEGIN and COMMIT
    assert len(acknowledged) == STATUSES + 1
    assert MessageReceipt.objects.count() == STATUSES + 1
    assert DeviceEvent.objects.filter(kind="mqtt.status").count() == STATUSES + 1
    assert per_status <= MAX_STATEMENTS_PER_STATUS, (
        f"{per_status:.1f} statements per status message (at most {MAX_STATEMENTS_PER_STATUS})"
    )


def test_the_digest_is_stored_by_upsert_and_a_retained_copy_of_it_is_still_recognised():
    make_device("PUMP_S")
    commit, _ = committer()
    unkeyed = b'{"status": "testing", "batteryLevel": 40}'  # no seq: only the digest can tell a replay
    commit.commit([InboundMessage(topic="devices/PUMP_S/status", payload=b'{"status": "idle"}')])
    commit.commit([InboundMessage(topic="devices/PUMP_S/status", payload=unkeyed)])
    assert RetainedMessage.objects.filter(topic="devices/PUMP_S/status").count() == 1
    commit.commit([InboundMessage(topic="devices/PUMP_S/status", payload=unkeyed, retain=True)])
    assert DeviceEvent.objects.filter(kind="mqtt.status").count() == 2, "a retained copy must not apply twice"
    assert Device.objects.get(device_id="PUMP_S").battery_level == 40
