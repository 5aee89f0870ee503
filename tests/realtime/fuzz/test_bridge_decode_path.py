"""Fuzzing the bridge's real path for a batch (Committer → BatchIngest → checks → safe decode → services).

Not only the schemas: every topic, registered and unknown pumps, fresh and redelivered messages, with the
documents Python's json mishandles (huge integers, overflowing floats, deep nesting, invalid UTF-8, lone
surrogates, duplicate keys). Each batch must commit whole: the hostile message refused with a reason (or
applied), acknowledged, never an unguarded exception; and the good message behind it applied.
"""

import itertools
import json
import threading
from collections import Counter

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from devices.models import DeadLetter, DeliveryAttempt, DeviceEvent
from protocol import topics
from realtime.bridge.batch import BatchIngest
from realtime.bridge.commit import Committer
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import APPLIED, InboundMessage
from tests.factories import make_device
from tests.realtime.fuzz.strategies import every_payload, hostile_documents
from tests.realtime.fuzz.test_payload_parsers import rejected_total

REGISTERED = "PUMP_FUZZ_PATH"
UNKNOWN = "PUMP_NOBODY"
good_seq = itertools.count(1)
every_topic = st.builds(
    lambda device_id, kind: (
        topics.legacy_status_topic(device_id) if kind == "legacy" else topics.device_topic(device_id, kind)
    ),
    st.sampled_from([REGISTERED, UNKNOWN]),
    st.sampled_from([*topics.DEVICE_KINDS, "legacy"]),
)


@pytest.fixture
def committer(db):
    """The worker's committer as `Bridge` wires it, collecting what it would acknowledge."""
    make_device(REGISTERED)
    acknowledged: list[tuple[InboundMessage, Counter]] = []
    ingest = BatchIngest(ProgressFloodGuard(rate_per_s=10, burst=100))
    return Committer(
        ingest=ingest, on_committed=lambda messages, outcomes: acknowledged.extend((m, outcomes) for m in messages),
        on_rollback=lambda: None, stop=threading.Event(), max_tries=3,
    ), acknowledged  # fmt: skip


def commit_hostile_then_good(committer, topic: str, raw: bytes, *, redelivered: bool) -> Counter:
    """Commit [hostile, good] as one batch; both must be acknowledged, the good one applied."""
    committer, acknowledged = committer
    acknowledged.clear()
    boot = f"fuzz-path-{next(good_seq)}"
    good = json.dumps({"status": "testing", "seq": 1, "bootId": boot}).encode()
    batch = [InboundMessage(topic=topic, payload=raw, redelivered=redelivered),
             InboundMessage(topic=topics.device_topic(REGISTERED, topics.STATUS), payload=good)]  # fmt: skip
    internal_before = rejected_total("internal_error")
    committer.commit(batch)
    assert [message for message, _ in acknowledged] == batch, "every message of the batch must be acknowledged"
    assert rejected_total("internal_error") == internal_before, "a hostile message hit an unguarded code path"
    assert DeviceEvent.objects.filter(boot_id=boot).exists(), "the good message behind the hostile one was lost"
    assert not DeliveryAttempt.objects.exists(), "a finished message must leave no try counted"
    return sum((outcomes for _, outcomes in acknowledged), Counter())


@given(topic=every_topic, raw=hostile_documents(), redelivered=st.booleans())
def test_documents_json_mishandles_are_refused_on_every_topic(committer, topic, raw, redelivered):
    before = DeadLetter.objects.count()
    outcomes = commit_hostile_then_good(committer, topic, raw, redelivered=redelivered)
    assert outcomes["rejected"] >= 1, f"{raw[:60]!r} on {topic} was not refused: {outcomes}"
    reasons = set(DeadLetter.objects.order_by("-id").values_list("reason", flat=True)[: DeadLetter.objects.count()
                                                                                       - before])  # fmt: skip
    event(", ".join(sorted(reasons)))
    assert reasons & {"bad_number", "too_deep", "bad_utf8", "duplicate_key", "bad_json", "too_large"} or (
        reasons == {"unknown_device"}
    ), f"refused for an unexpected reason: {reasons}"


@given(topic=every_topic, raw=every_payload, redelivered=st.booleans())
def test_any_payload_on_any_topic_leaves_the_batch_whole(committer, topic, raw, redelivered):
    outcomes = commit_hostile_then_good(committer, topic, raw, redelivered=redelivered)
    event(", ".join(sorted(name for name in outcomes if name in ("rejected", "ignored", "shed"))) or APPLIED)
