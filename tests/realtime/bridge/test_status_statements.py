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
MAX_STATEMENTS_PER_STATUS = 6.5  # was 10: six, plus three per run of messages (its pumps, its receipts)
# PostgreSQL: one more, the pump's lock a statement of its own before its row and session are read (a statement
# waiting for the lock reads its subqueries as of its start: `devices.services.changes.device_lock`, review 9)
PG_LOCK_STATEMENTS = 1


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


def test_a_status_costs_at_most_six_statements_and_a_lock_of_its_own_on_postgresql():
    make_device("PUMP_S")
    commit, acknowledged = committer()
    commit.commit([status(0)])  # the first report of a boot also stores the boot: not the steady state
    with CaptureQueriesContext(connection) as queries:
        commit.commit([status(seq) for seq in range(1, STATUSES + 1)])
    per_status = (len(queries.captured_queries) - 2) / STATUSES  # less the batch's BEGIN and COMMIT
    assert len(acknowledged) == STATUSES + 1
    assert MessageReceipt.objects.count() == STATUSES + 1
    assert DeviceEvent.objects.filter(kind="mqtt.status").count() == STATUSES + 1
    most = MAX_STATEMENTS_PER_STATUS + (PG_LOCK_STATEMENTS if connection.features.has_select_for_update else 0)
    assert per_status <= most, f"{per_status:.1f} statements per status message (at most {most})"


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


def test_a_refused_message_leaves_no_receipt_so_its_seq_can_be_applied_later(monkeypatch):
    """Receipts are claimed for a run of messages before each one's savepoint: a refused one's is released."""
    from devices.exceptions import PumpStreamError
    from devices.models import DeadLetter
    from realtime.bridge import ingest

    make_device("PUMP_S")
    commit, acknowledged = committer()
    apply = ingest.pump_report_apply

    def refuse_seq_1(**kwargs):
        if kwargs["report"].seq == 1:
            raise PumpStreamError("refused for the test", code="test_refusal")
        return apply(**kwargs)

    monkeypatch.setattr(ingest, "pump_report_apply", refuse_seq_1)
    commit.commit([status(1), status(2)])
    assert len(acknowledged) == 2 and DeadLetter.objects.filter(reason="test_refusal").count() == 1
    stored = set(MessageReceipt.objects.values_list("device_seq", flat=True))
    assert stored == {2}, f"a refused message must leave no receipt: receipts of seqs {sorted(stored)}"
    monkeypatch.setattr(ingest, "pump_report_apply", apply)
    commit.commit([status(1)])
    assert DeviceEvent.objects.filter(kind="mqtt.status", device_seq=1).count() == 1, "seq 1 applied when sent again"
