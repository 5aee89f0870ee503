"""What a refused message still does: a refused alarm, `degraded` status or report about the infusion (a status
among them) alarms, and no replay counts as news.

`ingest.reject` dead-letters a message that is not applied and then calls these; `ingest` reads the retained
digests through `retained_replay` too.
"""

import hashlib
import logging
import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from devices.ingest_selectors import retained_digests
from devices.selectors import device_exists
from devices.services.alarm_rules import alarm_unreadable_raise, degraded_unreadable_raise, report_unreadable_raise
from devices.services.pumps import DEGRADED_STATUSES
from devices.services.records import retained_digest_store
from protocol import topics
from protocol.schemas import PRESENCE_STATUSES
from realtime import metrics

if TYPE_CHECKING:
    from realtime.bridge.ingest import InboundMessage

logger = logging.getLogger(__name__)

# Statuses that say nothing of the infusion: one refused unreadably is no `unreadable_report` (review 19's leftovers)
NOT_ABOUT_THE_INFUSION = (*PRESENCE_STATUSES, "testing", *DEGRADED_STATUSES)
# The reports of what the pump did with its infusion: one that could not be read raises `unreadable_report`
INFUSION_REPORTS = (topics.COMPLETION, topics.ACTIONS, topics.INFUSION, topics.STATUS)
RAW_STATUS = re.compile(rb'"status"\s*:\s*"\s*([A-Za-z_]{1,32})\s*"')  # a refused status's word, undecoded


def retained_replay(message: "InboundMessage", *, presence: bool = False) -> bool:
    """A retained copy of the payload, or of the presence status, last applied on this topic (remembers this
    payload otherwise; `presence`: it is an `online`/`offline` status).

    The broker hands back the last payload the pump retained, which is not the last one applied when news
    followed it: a pump retains its `online` and then reports `degraded` (not retained). So the presence status
    last applied counts too, or that `online` handed back after a reconnect would clear the still-true
    `degraded`. A pump that publishes the same presence payload again (same bytes, no `seq`) while the bridge
    is away without a session is, in turn, taken for a replay: what it reported since stays shown until its
    next report (a `degraded` stays active, never an alarm hidden); its Last Will is told from its `online`.
    Only a retained message can be a replay, so only it reads the stored digests; any other applied report just
    stores its digest (one upsert), so a later retained copy of it is recognised.
    """
    digest = hashlib.sha256(message.payload).hexdigest()
    if message.retain:
        if digest in retained_digests(topic=message.topic):
            metrics.MESSAGES_DUPLICATE.labels(why="retained").inc()
            return True
    retained_digest_store(topic=message.topic, digest=digest, now=message.received_at, presence=presence)
    return False


# The envelope's values, which move on between two sends of one and the same message (review 25): masked before the
# digest, wherever they stand (a refused payload may not decode; a nested `timestamp` moving on is no news either).
# Only a JSON string or a bare word (a number, `true`, `NaN`) is masked: a payload refused for a missing comma
# (`"timestamp":60000"type":"occlusion"`) must keep its type (review 26: "anything up to the next separator" masked
# it, and an occlusion was taken for a repeat of an acknowledged air-in-line). Linear: each branch is one pass.
ENVELOPE_VALUE = re.compile(rb'("(?:seq|timestamp|bootId|uptime|deviceId)"\s*:\s*)(?:"(?:[^"\\]|\\.)*"|[-+.\w]*)')


def payload_digest(payload: bytes) -> str:
    """A short digest of a refused payload, whole but for its envelope's values: two unreadable alarms are told apart
    by it, not by their first 300 bytes (an excerpt), which a firmware's device block may fill alike (review 24); and
    the same alarm sent again, with only its `seq` and `timestamp` moved on, is a repeat, not news (review 25: a low
    battery refused whole and repeated every 30 s re-alerted at each repeat once acknowledged)."""
    return hashlib.blake2b(ENVELOPE_VALUE.sub(rb"\1_", payload), digest_size=8).hexdigest()


def error_unreadable_raise(message: "InboundMessage", reason: str, detail: str) -> None:
    """An `error` message that could not be read still alarms (v1.1): a high `unreadable_alarm` for its pump.

    `reject` calls it after the message was dead-lettered, whatever refused it (decode, bounds, schema,
    the per-message guard). Nothing happens for another topic, an unregistered pump, or a retained replay
    of the payload that already raised it. Runs in its own savepoint.
    """
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return
    if parsed.kind != topics.ERROR or not device_exists(parsed.device_id):
        return
    with transaction.atomic():
        if retained_replay(message):
            return
        excerpt = message.payload[:300].decode("utf-8", errors="replace")
        alarm = alarm_unreadable_raise(device_id=parsed.device_id, reason=reason, detail=detail, excerpt=excerpt,
                                       digest=payload_digest(message.payload), now=message.received_at)  # fmt: skip
    if alarm is not None:
        logger.warning("unreadable alarm raised: %s device=%s", reason, parsed.device_id,
                       extra={"device_id": parsed.device_id, "reason": reason})  # fmt: skip


def status_refused_alarm(message: "InboundMessage", reason: str, detail: str, document: dict | None = None) -> None:
    """A refused status that says `degraded` or `issue` still raises `device_degraded` (review 15): one odd field
    (a battery at 101, a timestamp object) must not hide that the pump says it needs attention.

    `reject` calls it after the message was dead-lettered. The status word is read from the decoded `document` when
    the payload was JSON, else from its raw bytes (any `"status": "degraded"` in it: when in doubt, alarm). Nothing
    happens for another topic, another word, an unregistered pump, or a retained replay. Runs in its own savepoint.
    """
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return
    if parsed.kind != topics.STATUS:
        return
    said = _statuses_said(message.payload, document)
    status = next((word for word in DEGRADED_STATUSES if word in said), None)
    if status is None or not device_exists(parsed.device_id):
        return
    with transaction.atomic():
        if retained_replay(message):
            return
        alarm = degraded_unreadable_raise(device_id=parsed.device_id, status=status, reason=reason, detail=detail,
                                          now=message.received_at)  # fmt: skip
    if alarm is not None:
        logger.warning("device_degraded raised for a refused status: %s device=%s", reason, parsed.device_id,
                       extra={"device_id": parsed.device_id, "reason": reason})  # fmt: skip


def _statuses_said(payload: bytes, document: dict | None) -> set[str]:
    """The status words a refused status says: its `status` when decoded, else every one its raw bytes name."""
    if document is not None:
        status = document.get("status")
        return {status.strip().lower()} if isinstance(status, str) else set()
    limit = settings.PUMPSTREAM["MAX_PAYLOAD_BYTES"]
    return {word.decode("ascii").lower() for word in RAW_STATUS.findall(payload[:limit])}


def infusion_report_refused_alarm(
    message: "InboundMessage", reason: str, detail: str, document: dict | None = None
) -> None:
    """A refused `completion`, `actions`, `infusion` or `status` report that could not be read even in part (review 19)
    still alarms: high `unreadable_report` on its pump, tied to the infusion it may be about, for the screen may no
    longer show what the pump does (a finished, stopped, paused or rejected infusion shown running or waiting). A
    status alarms only while an infusion is on the pump (`report_unreadable_raise`), and not when the word it says is
    presence, `testing` or `degraded`/`issue` (`status_refused_alarm`'s), read as for that alarm.

    One refused only for fields the contract does not need is applied without them (`protocol/salvage.py`) and comes
    here only if applying it then failed in the guard. `reject` calls it after the message was dead-lettered,
    whatever refused it (decode, bounds, schema, another pump's `deviceId`, the per-message guard), but not for a
    report the services refused once read (an unknown session). Nothing happens for another topic, an unregistered
    pump, or a retained replay. Runs in its own savepoint.
    """
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return
    said = document or {}
    if parsed.kind == topics.STATUS:
        words = _statuses_said(message.payload, document)
        if words and words <= set(NOT_ABOUT_THE_INFUSION):
            return  # presence, a test, or `degraded` (its own alarm): nothing of the infusion to miss
        said = {"status": next(iter(words))} if len(words) == 1 else {}
    if parsed.kind not in INFUSION_REPORTS or not device_exists(parsed.device_id):
        return
    with transaction.atomic():
        if retained_replay(message):
            return
        excerpt = message.payload[:300].decode("utf-8", errors="replace")
        alarm = report_unreadable_raise(
            device_id=parsed.device_id, kind=parsed.kind, said=said, reason=reason, detail=detail, excerpt=excerpt,
            digest=payload_digest(message.payload), now=message.received_at,
        )  # fmt: skip
    if alarm is not None:
        logger.warning("unreadable_report raised: %s %s device=%s", parsed.kind, reason, parsed.device_id,
                       extra={"device_id": parsed.device_id, "reason": reason, "kind": parsed.kind})  # fmt: skip
