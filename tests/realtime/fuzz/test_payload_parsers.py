"""Hypothesis fuzzing of every topic's payload parser and of the bridge's ingest: refuse with a reason, never crash."""

import itertools
import json

import pytest
from django.db import transaction
from hypothesis import event, given
from hypothesis import strategies as st

from devices.models import DeadLetter
from devices.selectors import session_current
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from devices.states import ACTIVE_SESSION_STATUSES
from protocol import topics
from protocol.schemas import PayloadError, payload_decode, payload_parse
from realtime import metrics
from realtime.bridge.ingest import APPLIED, DUPLICATE, IGNORED, REJECTED, InboundMessage, message_ingest
from tests.factories import make_device, make_order, make_user
from tests.realtime.fuzz.strategies import CURRENT, plausible_reports, raw_payloads

DECODE_REASONS = {"too_large", "bad_utf8", "bad_json", "not_object", "bad_number", "too_deep", "duplicate_key"}
MAX_BYTES = 16 * 1024
DEVICE = "PUMP_FUZZ"
good_seq = itertools.count(1)

topics_of_the_pump = st.sampled_from(
    [topics.device_topic(DEVICE, kind) for kind in topics.DEVICE_KINDS] + [topics.legacy_status_topic(DEVICE)]
)
hostile_topics = (
    topics_of_the_pump
    | st.text(max_size=60)
    | st.builds("devices/{}/{}".format, st.text(max_size=70), st.sampled_from(topics.DEVICE_KINDS))
)


def rejected_total(reason: str | None = None) -> float:
    """The bridge's rejection counter (all reasons, or one)."""
    return sum(
        sample.value
        for family in metrics.MESSAGES_REJECTED.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and (reason is None or sample.labels.get("reason") == reason)
    )


@pytest.mark.parametrize("kind", topics.DEVICE_KINDS)
@given(raw=raw_payloads)
def test_every_topic_parser_accepts_or_refuses_with_a_reason(kind, raw):
    try:
        report = payload_parse(kind, payload_decode(raw, max_bytes=MAX_BYTES))
    except PayloadError as refused:
        assert refused.reason in DECODE_REASONS | {"schema"}, f"unexpected reason {refused.reason!r}"
        return
    # What is accepted must be storable as JSON again (it goes into the audit log and to browsers).
    json.dumps(report.model_dump(mode="json"), allow_nan=False)


@pytest.fixture
def fuzzed_pump(db):
    """The pump the hostile messages claim to be, infusing, so reports reach a live session."""
    device = make_device(DEVICE)
    nurse = make_user("fuzz-nurse", ward=device.ward)
    return device, nurse


def ensure_running_session(device, nurse) -> str:
    """The pump's active infusion id, starting and confirming a new one when hostile reports ended it."""
    session = session_current(device)
    if session is None or session.status not in ACTIVE_SESSION_STATUSES:
        session = infusion_start(device_id=device.device_id, order=make_order(), user=nurse)
    if session.status == "pending":
        device.refresh_from_db()
        infusion_confirm(device=device, infusion_id=session.infusion_id, confirmed=True, parameters=None,
                         confirmation={"confirmed": True})  # fmt: skip
    return session.infusion_id


def ingest_and_check(topic: str, raw: bytes, *, retain: bool = False) -> str:
    """Ingest one hostile message, check it was counted if rejected, then check a good message still applies.

    A report about the infusion applied without the fields its schema refused (`protocol/salvage.py`) is
    dead-lettered and counted as refused all the same: every dead letter is counted once."""
    before, internal_before = rejected_total(), rejected_total("internal_error")
    watermark = DeadLetter.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with transaction.atomic():
        outcome = message_ingest(InboundMessage(topic=topic, payload=raw, retain=retain))
    assert outcome in (APPLIED, DUPLICATE, REJECTED, IGNORED)
    letters = DeadLetter.objects.filter(id__gt=watermark).count()
    assert letters == 1 if outcome == REJECTED else letters == 0 or outcome == APPLIED, f"{outcome}: {letters} letters"
    assert rejected_total() - before == letters, "every rejection is counted once"
    assert rejected_total("internal_error") == internal_before, "a hostile message hit an unguarded code path"
    good = json.dumps({"status": "testing", "seq": next(good_seq), "bootId": "fuzz-good"}).encode()
    with transaction.atomic():
        assert message_ingest(InboundMessage(topic=topics.device_topic(DEVICE, topics.STATUS), payload=good)) == APPLIED

    return outcome


@given(topic=hostile_topics, raw=raw_payloads, retain=st.booleans())
def test_ingest_of_arbitrary_topics_and_bytes_counts_every_rejection(fuzzed_pump, topic, raw, retain):
    event(ingest_and_check(topic, raw, retain=retain))


@given(report=plausible_reports(), retain=st.booleans())
def test_ingest_of_plausible_reports_with_edge_values_never_hits_an_unguarded_path(fuzzed_pump, report, retain):
    kind, payload = report
    infusion_id = ensure_running_session(*fuzzed_pump)
    payload = {key: (infusion_id if value == CURRENT else value) for key, value in payload.items()}
    event(f"{kind}: {ingest_and_check(topics.device_topic(DEVICE, kind), json.dumps(payload).encode(), retain=retain)}")


@pytest.mark.parametrize("topic", ["devices/PUMP_0001\n/status", "device/PUMP_0001\n/status"])
def test_a_device_id_with_a_trailing_newline_is_refused(topic):
    with pytest.raises(topics.TopicError):
        topics.parse_device_topic(topic)
