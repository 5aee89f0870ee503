"""One MQTT message → checked, de-duplicated and applied through the services, or rejected as a dead letter."""

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, OperationalError, transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.ingest_selectors import device_pk_of, device_pks_by_id
from devices.models import Device
from devices.services.progress import ROUTINE_STATUSES, ProgressReport, progress_apply_many
from devices.services.progress_lock import progress_pumps_lock
from devices.services.pumps import pump_report_apply
from devices.services.records import (
    ReceiptKey,
    dead_letter_record,
    message_receipt_release,
    message_receipts_claim,
    receipt_kind,
)
from devices.services.schema import schema_fault
from devices.services.sql import HotCursor, hot_cursor
from protocol import topics
from protocol.salvage import REFUSED_FIELDS, payload_salvage
from protocol.schemas import PRESENCE_STATUSES, DevicePayload, PayloadError, payload_decode, payload_parse
from realtime import metrics
from realtime.bridge.copies import copies_sent_since_boot, copy_held_if_sent_now, late_held_if_sent_now
from realtime.bridge.guard import message_digest
from realtime.bridge.refusals import (
    error_unreadable_raise,
    infusion_report_refused_alarm,
    retained_replay,
    status_refused_alarm,
)

logger = logging.getLogger(__name__)

APPLIED = "applied"
DUPLICATE = "duplicate"
REJECTED = "rejected"
IGNORED = "ignored"  # an empty payload: how a retained message is deleted, not a report
FORWARDED = "progress_forwarded"  # routine progress: one `device:progress` per pump per batch (newest)


@dataclass
class InboundMessage:
    """A message as the bridge received it, with what is needed to acknowledge it after the commit."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    mid: int = 0
    generation: int = 0
    redelivered: bool = False  # MQTT DUP: the broker hands it back unacknowledged (after a crash or reconnect)
    received_at: datetime = field(default_factory=timezone.now)
    shed: str | None = None  # decided once (BatchIngest.admit): "" admitted, else what shed it; None: not yet
    slot: int = 0  # the pump's slot when bridges share the pumps (`slots.py`); 0 with one bridge
    reclaimed: bool = False  # a message held (`copies.py`), claimed again after a reboot was told
    held_at: datetime | None = None  # with `reclaimed`: when it was first received
    # Turned away for a pump not registered (`unknown_device`): the status it said ("" none); read again once the pump
    # is registered (`rereads.py`). None: not turned away so.
    unregistered: str | None = None
    # The broker's retained status read again for a pump registered since the bridge turned it away: when the server
    # last heard the pump itself then (`rereads.py`), its last heard moment, not this copy's arrival.
    heard_at: datetime | None = None
    # With `heard_at`: when the server then heard the pump told gone (an `offline` turned away after its last live
    # message, `rereads.py`): the copy is applied as after that `offline`, never making the pump look online
    gone_at: datetime | None = None
    # With `gone_at`: the copy came on the link's connection that heard that `offline`, so what the pump published
    # since came live (and was turned away as news: none came), and the copy is no newer than the `offline`
    news_since_gone: bool = False
    # The bridge's broker session lasted through its time away (`BrokerLink.session_kept`): a pump's QoS 1 message of
    # that time was queued for it and arrives as news, so a retained QoS 1 copy is no newer than what was applied
    session_kept: bool = True


class Rejection(Exception):
    """Why a message is not applied: a dead-letter reason, a detail, the device id as claimed, and the decoded
    document when it was JSON (refused by the schema or for its `deviceId`: what it says is still read)."""

    def __init__(self, reason: str, detail: str = "", device_id: str = "", document: dict | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.device_id = device_id
        self.document = document


@dataclass(frozen=True)
class CheckedMessage:
    """A message that passed the checks that need no database; `refusal`: the schema refused it, and `report` is
    what of it can still be read (`protocol/salvage.py`), applied with its refusal dead-lettered."""

    device_id: str
    kind: str
    report: DevicePayload
    refusal: PayloadError | None = None


def message_check(message: InboundMessage) -> CheckedMessage:
    """Topic, size, UTF-8, JSON object, schema, and the payload's device id against the topic's."""
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError as exc:
        raise Rejection(exc.reason, message.topic[:200], exc.device_id) from exc
    try:
        document = payload_decode(message.payload, max_bytes=settings.PUMPSTREAM["MAX_PAYLOAD_BYTES"])
    except PayloadError as exc:
        raise Rejection(exc.reason, exc.detail, parsed.device_id) from exc
    refusal = None
    try:
        report = payload_parse(parsed.kind, document)
    except PayloadError as exc:
        report, refusal = payload_salvage(parsed.kind, document), exc
        if report is None:
            raise Rejection(exc.reason, exc.detail, parsed.device_id, document) from exc
    if report.deviceId is not None and report.deviceId != parsed.device_id:
        raise Rejection("device_mismatch", f"payload says {report.deviceId}", parsed.device_id, document)
    if refusal is None:  # one read in part is counted with its dead letter, when it is applied
        _received(parsed.kind).inc()
    if report.fields_not_stored:
        metrics.FIELDS_NOT_STORED.labels(kind=parsed.kind).inc()
    return CheckedMessage(parsed.device_id, parsed.kind, report, refusal)


@cache
def _received(kind: str):
    """The received counter of one topic kind, its child found once: `labels()` checks the values and takes a lock on
    every call. Created at its first message, as `labels()` creates it (a kind never received is not reported)."""
    return metrics.MESSAGES_RECEIVED.labels(kind=kind)


@cache
def _late(kind: str):
    """The late messages' counter of one topic kind, its child found once (as `_received`)."""
    return metrics.MESSAGES_LATE.labels(kind=kind)


@cache
def _duplicates(why: str):
    """The duplicates counter of one reason, its child found once (as `_received`)."""
    return metrics.MESSAGES_DUPLICATE.labels(why=why)


def is_routine_progress(checked: CheckedMessage) -> bool:
    """Progress while running (or without a status): routine, applied in bulk and coalesced per pump."""
    return checked.kind == topics.PROGRESS and checked.report.status in ROUTINE_STATUSES


@dataclass(frozen=True)
class Prepared:
    """What `messages_prepare` found for a message before its savepoint: its pump's pk (None: no such pump) and
    its receipt (`new`: claimed now; False: a duplicate; None: not claimed ahead, as for a message without
    `seq`+`bootId` or a copy of an earlier one of its run: the same key and bytes)."""

    device_pk: int | None
    receipt: ReceiptKey | None = None
    new: bool | None = None


def messages_prepare(items: list[tuple[InboundMessage, CheckedMessage]]) -> list[Prepared]:
    """For a run of checked messages about to be applied one by one: their pumps' pks in one query and their
    receipts claimed in one more, in place of two or three statements per message. A claimed receipt a
    message's rejection leaves behind is released again (`message_ingest`). A key repeated within the run is
    not claimed ahead: that copy claims it in its turn (`_seen_before`), so it is a duplicate if the first copy
    was applied, and is judged on its own if the first was refused (its claim released)."""
    device_ids = {checked.device_id for _, checked in items}
    pks = device_pks_by_id(device_ids=device_ids)
    receipts: list[ReceiptKey | None] = []
    in_run = set()
    for message, checked in items:
        receipt = receipt_of(message, checked, pks.get(checked.device_id))
        if receipt is None or receipt[:4] in in_run:
            receipts.append(None)  # an unknown pump, no key, or a copy of an earlier message of the run
            continue
        in_run.add(receipt[:4])
        receipts.append(receipt)
    claimed = iter(message_receipts_claim(receipts=[receipt for receipt in receipts if receipt is not None]))
    return [
        Prepared(pks.get(checked.device_id), receipt, next(claimed) if receipt is not None else None)
        for (_, checked), receipt in zip(items, receipts, strict=True)
    ]


def prepared_after_status(prepared: Prepared, statuses: set[tuple[int | None, str]]) -> Prepared:
    """A message judged a copy ahead of its run (`messages_prepare`) that follows, in the same batch, a status of its
    pump under its `bootId` (`statuses`): that status may have told a reboot under the reused bootId and retired the
    run before's receipts (`message_receipts_retire`), the one its claim conflicted with among them. It is then
    claimed again in its turn (`_seen_before`): still a copy if that receipt stands, the new run's message if it was
    retired (review 24, finding 2: the new run's occlusion, in the reboot's own batch, was dropped as a copy). One
    statement more for such a message only, none for a routine batch."""
    if prepared.new is False and (prepared.device_pk, prepared.receipt.boot_id) in statuses:
        return replace(prepared, new=None)
    return prepared


def receipt_of(message: InboundMessage, checked: CheckedMessage, device_pk: int | None) -> ReceiptKey | None:
    """The receipt of a message from a registered pump (`device_pk`) that carries `seq`+`bootId`, else None."""
    key = checked.report.message_key
    if device_pk is None or key is None:
        return None
    digest = message_digest(checked.kind, message.payload)
    return ReceiptKey(device_pk, *key, digest, message.received_at, message.retain or message.redelivered,
                      receipt_kind(checked.kind))  # fmt: skip


def message_ingest(
    message: InboundMessage, checked: CheckedMessage | None = None, prepared: Prepared | None = None
) -> str:
    """Apply one message inside the caller's transaction; returns applied, duplicate or rejected.

    A database failure that may pass (locked, disconnected) propagates so the whole batch is retried
    unacknowledged; anything else wrong with this one message rejects it and the batch goes on.
    `prepared` (with `checked`): its pump and receipt as `messages_prepare` found them.
    """
    device_id = checked.device_id if checked else ""
    document, read = None, False
    if not message.payload:
        metrics.MESSAGES_DUPLICATE.labels(why="empty").inc()
        return IGNORED
    try:
        checked = checked or message_check(message)
        device_id = checked.device_id
        with transaction.atomic():
            outcome = _apply(message, checked, prepared)
            if checked.refusal is not None and outcome == APPLIED:
                _read_in_part_record(message, checked)
            return outcome
    except Rejection as rejection:
        reason, detail, device_id = rejection.reason, rejection.detail, rejection.device_id or device_id
        document = rejection.document
    except PumpStreamError as exc:  # read, and refused by the services (an unknown session): no unreadable alarm
        reason, detail, read = exc.code, exc.message, True
    except Device.DoesNotExist:  # deleted after its run read the pumps' ids (another process's commit)
        reason, detail = "unknown_device", "no pump registered with this id"
    except OperationalError:
        raise
    except IntegrityError as exc:  # a later release's column or constraint is the database's (`schema_ahead`)
        if (fault := schema_fault(exc)) is not None:
            raise fault from exc
        reason, detail = "integrity", str(exc)
    except DataError as exc:  # a value the database refuses (too long for its column): the message's, not the batch's
        logger.exception("message refused by the database", extra={"topic": message.topic, "device_id": device_id})
        reason, detail = "data_error", str(exc)
    except DatabaseError:
        raise
    except Exception as exc:  # the one guarded catch-all per message: log, count, dead-letter, go on
        logger.exception("message failed", extra={"topic": message.topic, "device_id": device_id})
        reason, detail = "internal_error", repr(exc)
    if prepared is not None and prepared.new:  # its savepoint is undone, but the receipt was claimed before it
        message_receipt_release(receipt=prepared.receipt)
    if document is None and isinstance(checked, CheckedMessage):  # read, then refused while applied
        document = checked.report.model_dump(include={"status", "action", "confirmed"})
        if checked.refusal is not None:
            detail = f"{detail}; read without the fields refused: {checked.refusal.detail}"
    reject(message, reason, detail, device_id, document, read=read)
    return REJECTED


def _read_in_part_record(message: InboundMessage, checked: CheckedMessage) -> None:
    """A report applied with the fields the contract needs, the others refused (`protocol/salvage.py`): dead-lettered
    whole all the same with its refusal (the odd fields are kept there, the stored report names them under
    `refusedFields`), counted and logged, so the firmware's fault is seen as for any refused message."""
    refusal, refused = checked.refusal, ", ".join(checked.report.model_extra.get(REFUSED_FIELDS, []))
    detail = f"applied without {refused}: {refusal.detail}"
    metrics.MESSAGES_REJECTED.labels(reason=refusal.reason).inc()
    logger.warning(
        "report applied without its refused fields: %s (%s) topic=%s device=%s", refusal.reason, detail[:200],
        message.topic[:200], checked.device_id,
        extra={"topic": message.topic[:200], "device_id": checked.device_id, "reason": refusal.reason,
               "detail": detail[:300]},
    )  # fmt: skip
    dead_letter_record(
        topic=message.topic, source=checked.device_id, reason=refusal.reason, detail=detail, payload=message.payload
    )


def _apply(message: InboundMessage, checked: CheckedMessage, prepared: Prepared | None) -> str:
    if prepared is None or prepared.device_pk is None:  # not found for its run: perhaps registered since
        device_pk = device_pk_of(device_id=checked.device_id)
        prepared = Prepared(device_pk)
    if prepared.device_pk is None:
        raise Rejection("unknown_device", "no pump registered with this id", checked.device_id)
    if _seen_before(message, checked, prepared):
        return DUPLICATE
    applied = pump_report_apply(
        device_id=checked.device_id, kind=checked.kind, topic=message.topic, report=checked.report,
        received_at=message.received_at, retained=message.retain, heard_at=message.heard_at, gone_at=message.gone_at,
        news_queued=(message.session_kept and message.qos > 0) or message.news_since_gone,
        held_at=(message.held_at or message.received_at) if message.reclaimed else None,
    )  # fmt: skip
    if applied.late:  # recorded in the pump's log; held in case it is a rebooted pump's under its reused bootId
        _late(checked.kind).inc()
        late_held_if_sent_now(message, checked, prepared.device_pk)
    if applied.restarted:
        _copies_reclaim(message, checked, prepared.device_pk)
    return APPLIED


def _copies_reclaim(status: InboundMessage, checked: CheckedMessage, device_pk: int) -> None:
    """After a status that told its pump restarted: the alarms held as copies since the boot it tells, each applied
    now (at the status's receive time, after it), in its own savepoint, as the message it is. Claimed again, one is
    the new run's when the reboot retired the run before's receipt it matched, and is raised (review 25, finding 3);
    a copy still when it stands (a new `bootId` retires nothing)."""
    for topic, payload, held_at in copies_sent_since_boot(status, checked, device_pk):
        copy = InboundMessage(topic=topic, payload=payload, received_at=status.received_at, slot=status.slot,
                              reclaimed=True, held_at=held_at)  # fmt: skip
        outcome = message_ingest(copy)
        logger.info(
            "alarm held as a copy claimed again after a told reboot: %s", outcome,
            extra={"topic": topic[:200], "device_id": checked.device_id, "reason": "reboot_reclaim"},
        )  # fmt: skip


def _seen_before(message: InboundMessage, checked: CheckedMessage, prepared: Prepared) -> bool:
    """A copy of a message applied before (same `seq`+`bootId`, kind and payload), or a retained copy of the
    payload or presence status last applied on its topic."""
    report = checked.report
    receipt = prepared.receipt or receipt_of(message, checked, prepared.device_pk)
    if receipt is not None:
        new = prepared.new
        if new is None:
            new = message_receipts_claim(receipts=[receipt])[0]
        if not new:
            _duplicates("seq").inc()
            copy_held_if_sent_now(message, checked, receipt)
            return True
    presence = checked.kind == topics.STATUS and report.status in PRESENCE_STATUSES
    return checked.kind != topics.PROGRESS and retained_replay(message, presence=presence)


def routine_progress_ingest(items: list[tuple[InboundMessage, CheckedMessage]]) -> Counter[str]:
    """Routine progress of many pumps in bulk: unknown pumps rejected, duplicates skipped, the rest applied. Its
    statements share one cursor (`hot_cursor`: the connection's checks once a batch, not once a statement)."""
    with hot_cursor() as cursor:
        return _routine_progress_apply(items, cursor)


def _routine_progress_apply(items: list[tuple[InboundMessage, CheckedMessage]], cursor: HotCursor) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    pumps = progress_pumps_lock(device_ids=[checked.device_id for _, checked in items], cursor=cursor)
    accepted = []
    for message, checked in items:
        if checked.device_id in pumps:
            accepted.append((message, checked))
        else:
            reject(message, "unknown_device", "no pump registered with this id", checked.device_id)
            outcomes[REJECTED] += 1
    receipts = [(message, receipt_of(message, checked, pumps[checked.device_id].device.pk))
                for message, checked in accepted]  # fmt: skip
    keyed = [(message, receipt) for message, receipt in receipts if receipt is not None]
    claimed = message_receipts_claim(receipts=[receipt for _, receipt in keyed], cursor=cursor)
    repeated = {id(message) for (message, _), new in zip(keyed, claimed, strict=True) if not new}
    _duplicates("seq").inc(len(repeated))
    outcomes[DUPLICATE] += len(repeated)
    fresh = [ProgressReport(c.device_id, c.report, m.received_at, m.retain) for m, c in accepted
             if id(m) not in repeated]  # fmt: skip
    if fresh:
        applied = progress_apply_many(pumps=pumps, reports=fresh, cursor=cursor)
        outcomes[FORWARDED] += applied.changes
        if applied.late:  # recorded in their pumps' logs (`late_reports.py`); never held: routine, superseded
            _late(topics.PROGRESS).inc(applied.late)
    outcomes[APPLIED] += len(fresh)
    return outcomes


def reject(
    message: InboundMessage, reason: str, detail: str, device_id: str, document: dict | None = None, *,
    read: bool = False,
) -> None:  # fmt: skip
    """Log, count and dead-letter a message that is not applied; a refused alarm is itself an alarm, a refused status
    saying `degraded`/`issue` raises its alarm, and a report of what the pump did with its infusion that could not be
    read raises `unreadable_report` (`document`: the payload decoded, when it was JSON; `read`: the report was read
    and the services refused it, as an infusion unknown on the pump: no alarm for its form)."""
    metrics.MESSAGES_REJECTED.labels(reason=reason).inc()
    logger.warning(
        "message rejected: %s (%s) topic=%s device=%s", reason, detail[:200], message.topic[:200], device_id,
        extra={"topic": message.topic[:200], "device_id": device_id, "reason": reason, "detail": detail[:300]},
    )  # fmt: skip
    dead_letter_record(
        topic=message.topic, source=device_id or "unknown", reason=reason, detail=detail, payload=message.payload
    )
    if reason == "unknown_device":  # remembered by the worker: read again once the pump is registered
        message.unregistered = str((document or {}).get("status") or "")
    error_unreadable_raise(message, reason, detail)
    status_refused_alarm(message, reason, detail, document)
    if not read:
        infusion_report_refused_alarm(message, reason, detail, document)
