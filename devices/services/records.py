"""Dead letters, the bridge's heartbeat, and pruning of history."""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, ProgrammingError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from devices.ingest_selectors import bridge_away_since
from devices.models import (
    BridgeStatus,
    DeadLetter,
    DeliveryAttempt,
    DeviceEvent,
    HeldCopy,
    MessageReceipt,
    ProgressSample,
    RetainedMessage,
)
from devices.services.sql import HotCursor, datetime_prepared, hot_cursor
from protocol import topics

logger = logging.getLogger(__name__)
EXCERPT_CHARS = 2000
RECEIPT_COLUMNS = ("device", "boot_id", "device_seq", "digest", "kind", "received_at")
# A receipt's `kind` (`MessageReceipt.kind`): its message's kind as the topic parser reads it. Stored: a code is never
# given to another kind. 0: a receipt from before kinds were kept (migration 0040), of no known kind.
RECEIPT_KINDS = {topics.STATUS: 1, topics.PROGRESS: 2, topics.INFUSION: 3, topics.COMPLETION: 4, topics.ACTIONS: 5,
                 topics.ERROR: 6, topics.BOLUS: 7, topics.TEST: 8}  # fmt: skip


def dead_letter_record(
    *, topic: str, source: str, reason: str, detail: str = "", payload: bytes | str = b""
) -> DeadLetter:
    """Store a rejected message (bounded per source, so a chatty pump cannot fill the disk).

    A NUL becomes U+FFFD, as undecodable bytes do: PostgreSQL stores no NUL in text (the letter would fail to
    be stored, and its batch with it).
    """
    if isinstance(payload, bytes):
        payload = payload[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    letter = DeadLetter.objects.create(
        topic=text_storable(topic[:200]), source=text_storable(source[:200]), reason=text_storable(reason[:48]),
        detail=text_storable(detail[:500]), payload_excerpt=text_storable(payload[:EXCERPT_CHARS]),
    )  # fmt: skip
    limit = settings.PUMPSTREAM["DEAD_LETTERS_PER_SOURCE"]
    newest_first = DeadLetter.objects.filter(source=letter.source).order_by("-id").values_list("id", flat=True)
    overflow = list(newest_first[limit : limit + 100])
    if overflow:
        DeadLetter.objects.filter(id__in=overflow).delete()
    return letter


def text_storable(text: str) -> str:
    """`text` with each NUL as U+FFFD: PostgreSQL stores no NUL in text or jsonb (untrusted text kept as evidence)."""
    return text.replace("\x00", "\ufffd")


def delivery_attempt_begin(*, key: str, topic: str, now: datetime | None = None) -> int:
    """Count one more try of a redelivered message, committed at once; returns the tries so far, this one included."""
    now = now or timezone.now()
    with transaction.atomic():
        attempt, created = DeliveryAttempt.objects.select_for_update().get_or_create(
            key=key, defaults={"topic": topic[:200], "attempts": 1, "first_at": now, "last_at": now}
        )
        if not created:
            DeliveryAttempt.objects.filter(pk=attempt.pk).update(attempts=F("attempts") + 1, last_at=now)
            attempt.attempts += 1
    return attempt.attempts


def delivery_attempts_first(*, topics_by_key: dict[str, str], now: datetime | None = None) -> None:
    """Count the first try of redelivered messages none of which was tried before (one insert for a batch)."""
    now = now or timezone.now()
    DeliveryAttempt.objects.bulk_create(
        [DeliveryAttempt(key=key, topic=topic[:200], attempts=1, first_at=now, last_at=now)
         for key, topic in topics_by_key.items()],
        ignore_conflicts=True,
    )  # fmt: skip


def delivery_attempts_end(*, keys: Sequence[str]) -> None:
    """Forget the tries of messages that were applied or dead-lettered (in the caller's transaction)."""
    DeliveryAttempt.objects.filter(key__in=list(keys)).delete()


class ReceiptKey(NamedTuple):
    """What identifies one message of one pump: its `bootId` and `seq`, and its bytes' digest; when it was received,
    whether it came as a possible copy of an earlier message (`replay`: retained, or redelivered with DUP), and its
    kind (`RECEIPT_KINDS`: kept beside the key, read by `message_key_used_before`)."""

    device_pk: int
    boot_id: str
    device_seq: int
    digest: int
    received_at: datetime
    replay: bool = False
    kind: int = 0


LEGACY_DIGEST = 0  # a receipt stored before digests were kept (before migration 0024): its bytes are not known


class ReceiptsSchemaMismatch(DatabaseError):
    """The receipts table is not as this code expects (`ProgrammingError` on the claim): a rolling deploy, a bridge
    of one release running against another release's schema. The infrastructure's fault, never one message's: the
    bridge's guard counts it among `INFRASTRUCTURE_ERRORS` (stalls unacknowledged, never dead-letters)."""


def message_receipts_claim(*, receipts: Sequence[ReceiptKey], cursor: HotCursor | None = None) -> list[bool]:
    """Store each receipt whose (pump, bootId, seq, digest) is new; per receipt, True when it was new.

    A receipt already stored with the same digest, or repeated earlier in `receipts`, is a duplicate (False): that
    message was applied before. The same key with another digest is another message (a pump that reused its bootId
    after a reboot): new. One statement inside the caller's transaction (`INSERT ... ON CONFLICT DO NOTHING
    RETURNING`, PostgreSQL and SQLite 3.35+ alike): the receipts it returns were new. It was a SELECT of the
    stored keys and an INSERT of the rest, one statement more on every bridge batch. The unique constraint is
    what decides, so no other writer's receipt can slip between a look and an insert. A possible copy (`replay`)
    that is new is looked up once more among receipts from before digests were kept (`LEGACY_DIGEST`) and among
    those of the pump's run before a told reboot under the same bootId (`message_receipts_retire`).
    Raises `ReceiptsSchemaMismatch` when the database refuses the statements as written (`ProgrammingError`).
    `cursor`: the caller's, shared by its statements (`hot_cursor`).
    """
    try:
        claimed: list[bool] = []
        for start in range(0, len(receipts), RECEIPTS_PER_STATEMENT):
            claimed += _receipts_insert(receipts[start : start + RECEIPTS_PER_STATEMENT], cursor)
        replays = [index for index, new in enumerate(claimed) if new and receipts[index].replay]
        if replays:
            earlier = _earlier_copies([receipts[index] for index in replays])
            for index in replays:
                claimed[index] = tuple(receipts[index][:4]) not in earlier
    except ProgrammingError as exc:
        raise ReceiptsSchemaMismatch(f"message receipts: schema not as this code expects ({exc})") from exc
    return claimed


RECEIPTS_PER_STATEMENT = 400  # 2,400 parameters: within both databases' limits


def _receipts_insert(receipts: Sequence[ReceiptKey], cursor: HotCursor | None) -> list[bool]:
    if not receipts:
        return []
    with hot_cursor(cursor) as cursor:
        params = [value for receipt in receipts
                  for value in (*receipt[:4], receipt.kind,
                                datetime_prepared(receipt.received_at, cursor))]  # fmt: skip
        cursor.execute(_receipts_insert_sql(cursor.wrapper.vendor, len(receipts)), params)
        new = set(cursor.fetchall())
    claimed = []
    for receipt in receipts:
        key = tuple(receipt[:4])
        claimed.append(key in new)
        new.discard(key)  # a receipt repeated later in `receipts` is a duplicate of its first
    return claimed


@lru_cache(maxsize=1024)
def _receipts_insert_sql(vendor: str, count: int) -> str:
    """`INSERT INTO receipts (...) VALUES (...), ... ON CONFLICT (pump, boot, seq, digest) DO NOTHING RETURNING
    pump, boot, seq, digest`, for `count` receipts."""
    quote, meta = connections[DEFAULT_DB_ALIAS].ops.quote_name, MessageReceipt._meta
    columns = [quote(meta.get_field(name).column) for name in RECEIPT_COLUMNS]
    key = ", ".join(columns[:4])
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * count)
    return (f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) VALUES {values} "
            f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}")  # fmt: skip


def _earlier_copies(receipts: Sequence[ReceiptKey]) -> set[tuple]:
    """Which of these receipts (pump, bootId, seq, digest) a stored one says were applied before: one stored before
    digests were kept (`LEGACY_DIGEST`), or one retired at a told reboot (`message_receipts_retire`) with the same
    digest. One query per `LEGACY_KEYS_PER_QUERY` receipts, each two probes of the receipts' unique index."""
    wanted = sorted({tuple(receipt[:4]) for receipt in receipts})
    legacy: set[tuple] = set()
    retired: set[tuple] = set()
    for start in range(0, len(wanted), LEGACY_KEYS_PER_QUERY):
        keys = Q()
        for device_pk, boot_id, device_seq, digest in wanted[start : start + LEGACY_KEYS_PER_QUERY]:
            keys |= Q(device_id=device_pk, boot_id=boot_id, device_seq=device_seq, digest=LEGACY_DIGEST)
            keys |= Q(device_id=device_pk, boot_id=boot_id, device_seq=_retired(device_seq), digest=digest)
        stored = MessageReceipt.objects.filter(keys).values_list("device_id", "boot_id", "device_seq", "digest")
        for device_pk, boot_id, device_seq, digest in stored:
            if device_seq < 0:
                retired.add((device_pk, boot_id, _retired(device_seq), digest))
            else:
                legacy.add((device_pk, boot_id, device_seq))
    return {key for key in wanted if key[:3] in legacy or key in retired}


def message_key_used_before(*, device_pk: int, boot_id: str, device_seq: int, kind: str, before: datetime) -> bool:
    """Whether another message of the pump and of this `kind` was received under this `bootId`+`seq` before `before`:
    the key is reused (a pump reusing its `bootId` numbers from 0 again after a reboot), so a message under it below
    the pump's mark is a new run's, not a late one (`late_reports.py`). A message of another kind under the key says
    nothing: a pump that numbers its ticks sends a progress and a status (or an alarm) under one `seq`, and the one of
    the pair resent late is the first of its kind under that key (review 45, F1). Nor does a receipt from before kinds
    were kept (0). One probe of the receipts' unique index (the kind read from the rows it finds), asked only of a
    message numbered below the mark. A receipt retired at a told reboot (`message_receipts_retire`) was a message
    under the key too."""
    return MessageReceipt.objects.filter(device_id=device_pk, boot_id=boot_id[:64], received_at__lt=before,
                                         device_seq__in=(device_seq, _retired(device_seq)),
                                         kind=receipt_kind(kind)).exists()  # fmt: skip


def message_keys_received(
    *, device_pk: int, boot_id: str, kind: str, above: int, since: datetime, until: datetime
) -> list[tuple[int, datetime, bool]]:
    """The pump's messages of this `kind` under this `bootId` numbered above `above`, received from `since` to `until`
    (both included), whether applied or late, as (`seq`, received at, reused): `reused` when a message of its kind was
    received under its key before it (a pump reusing its `bootId`: the later one is the new run's). A retired receipt
    (a told reboot's, `message_receipts_retire`) under its `seq` as sent. Two reads of the receipts' unique index."""
    receipts = MessageReceipt.objects.filter(device_id=device_pk, boot_id=boot_id[:64], kind=receipt_kind(kind))
    above_it = Q(device_seq__gt=above) | Q(device_seq__lt=_retired(above))
    received = [(_as_sent(seq), at) for seq, at in receipts.filter(above_it, received_at__gte=since,
                                                                   received_at__lte=until)
                .values_list("device_seq", "received_at")]  # fmt: skip
    if not received:
        return []
    seqs = {seq for seq, _ in received}
    first: dict[int, datetime] = {}
    for seq, at in receipts.filter(device_seq__in=[*seqs, *map(_retired, seqs)]).values_list(
        "device_seq", "received_at"
    ):
        first[_as_sent(seq)] = min(first.get(_as_sent(seq), at), at)
    return [(seq, at, at > first[seq]) for seq, at in received]


def _as_sent(device_seq: int) -> int:
    """A receipt's `seq` as the pump sent it (a retired one's stored as -1 - seq)."""
    return device_seq if device_seq >= 0 else _retired(device_seq)


def receipt_kind(kind: str) -> int:
    """A topic kind's code in the receipts (`RECEIPT_KINDS`)."""
    return RECEIPT_KINDS[kind]


def _retired(device_seq: int) -> int:
    """A retired receipt's `seq` for a live one's, and back (a pump's `seq` is never negative: -1 - seq)."""
    return -1 - device_seq


def message_receipts_retire(*, device_pk: int, boot_id: str, before: datetime) -> int:
    """A reboot under a reused bootId was told (`restarts.py`: its status's uptime went back): the receipts of that
    bootId received before it are the run before's, never this run's messages, which may repeat them byte for byte
    under the same `seq` (review 23, finding 4: the new run's occlusion was dropped as a copy). They are retired
    (`seq` stored as -1 - seq), not deleted: a possible copy (`replay`: retained, or redelivered with DUP) of one of
    them is still a copy (`_earlier_copies`). Those retired at the reboot before are deleted first. Returns how many."""
    receipts = MessageReceipt.objects.filter(device_id=device_pk, boot_id=boot_id)
    receipts.filter(device_seq__lt=0).delete()
    return receipts.filter(device_seq__gte=0, received_at__lt=before).update(device_seq=-1 - F("device_seq"))


LEGACY_KEYS_PER_QUERY = 200  # 1,600 parameters


def message_receipt_release(*, receipt: ReceiptKey) -> None:
    """Forget a receipt claimed for a message that was then refused (its pump may send that `seq` again)."""
    MessageReceipt.objects.filter(device_id=receipt.device_pk, boot_id=receipt.boot_id,
                                  device_seq=receipt.device_seq, digest=receipt.digest).delete()  # fmt: skip


def retained_digest_store(*, topic: str, digest: str, now: datetime, presence: bool = False) -> None:
    """Remember `digest` as the payload last applied on `topic` and, for a presence status (`presence`), as the
    presence status last applied there: one upsert (no read, no savepoint).

    The bridge stores it for every applied state report; on PostgreSQL the read-then-update it replaced cost
    six statements per status (a savepoint, a locking read, an update), a third of the status path's.
    """
    wrapper = connections[DEFAULT_DB_ALIAS]
    moment = wrapper.ops.adapt_datetimefield_value(now)
    with wrapper.cursor() as cursor:  # written once: the ORM compiled the upsert anew for every status
        cursor.execute(
            _digest_upsert_sql(wrapper.vendor, presence), [topic, digest, digest if presence else "", moment]
        )


@lru_cache(maxsize=8)
def _digest_upsert_sql(vendor: str, presence: bool) -> str:
    """`INSERT ... ON CONFLICT (topic) DO UPDATE` (PostgreSQL and SQLite 3.24+ both speak it); the presence digest
    is replaced only by a presence status."""
    quote, meta = connections[DEFAULT_DB_ALIAS].ops.quote_name, RetainedMessage._meta
    topic, digest, presence_digest, applied_at = (
        quote(meta.get_field(name).column) for name in ("topic", "digest", "presence_digest", "applied_at")
    )
    replaced = [digest, applied_at, *([presence_digest] if presence else [])]
    update = ", ".join(f"{column} = excluded.{column}" for column in replaced)
    return (f"INSERT INTO {quote(meta.db_table)} ({topic}, {digest}, {presence_digest}, {applied_at}) "
            f"VALUES (%s, %s, %s, %s) ON CONFLICT ({topic}) DO UPDATE SET {update}")  # fmt: skip


def bridge_started(*, name: str = "bridge", now: datetime | None = None) -> float | None:
    """A bridge starting (again): its first heartbeat, not holding the broker, keeping the moment it last held it
    (a start that dies before connecting must not shorten the next start's time away); returns that moment as
    epoch seconds (None: it never ran), from which its backlog is credited (`realtime/bridge/flood.py`)."""
    away_since = bridge_away_since(name=name)
    lost_since = datetime.fromtimestamp(away_since, UTC) if away_since is not None else None
    bridge_heartbeat(broker_connected=False, stats={"starting": True}, name=name, now=now, lost_since=lost_since)
    return away_since


def bridge_heartbeat(
    *,
    broker_connected: bool,
    stats: dict | None = None,
    name: str = "bridge",
    now: datetime | None = None,
    connected_since: datetime | None = None,
    lost_since: datetime | None = None,
) -> BridgeStatus:
    """Record that the bridge is alive, and whether it holds the broker.

    `connected_since` is the link's own time of its latest connection: a drop and reconnect between two
    heartbeats still moves `broker_connected_since`, which sampling `broker_connected` alone would miss.
    `lost_since`: when a bridge starting again last held the broker (its time away began then, not now: a start
    that dies before connecting must not shorten the next start's time away).
    """
    now = now or timezone.now()
    with transaction.atomic():
        status, _ = BridgeStatus.objects.select_for_update().get_or_create(name=name)
        if broker_connected and connected_since is not None:
            status.broker_connected_since = connected_since
            status.broker_lost_since = None
        elif broker_connected and not status.broker_connected:
            status.broker_connected_since = now
            status.broker_lost_since = None
        elif not broker_connected and (status.broker_connected or status.broker_lost_since is None):
            status.broker_lost_since = lost_since or now
        status.broker_connected = broker_connected
        status.heartbeat_at = now
        if stats is not None:
            status.stats = stats
        status.save()
    return status


def history_prune(*, older_than_days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete progress samples, events, receipts and copies held longer than the retention (`copies.py` lets a held copy
    go at the next one a pump holds or a reboot it tells); returns counts per table."""
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    deleted = {
        "progress_samples": ProgressSample.objects.filter(recorded_at__lt=cutoff).delete()[0],
        "device_events": DeviceEvent.objects.filter(received_at__lt=cutoff).delete()[0],
        "message_receipts": MessageReceipt.objects.filter(received_at__lt=cutoff).delete()[0],
        "delivery_attempts": DeliveryAttempt.objects.filter(last_at__lt=cutoff).delete()[0],
        "held_copies": HeldCopy.objects.filter(received_at__lt=cutoff).delete()[0],
    }
    logger.info("history pruned", extra={"reason": f"older than {older_than_days} days"})
    return deleted
