"""Committing what the bridge received: a batch in one transaction, or message by message when that is safer.

- A batch is one transaction, acknowledged after its commit (the worker hands a flooding pump's share
  over as a batch of its own, after the other pumps', see `fair.py`).
- A failure of the infrastructure (`guard.infrastructure_fault`: the database down, locked or full, its schema
  behind or ahead of the code, a dead letter not stored) is retried with backoff, unacknowledged, for as long as
  it lasts; meanwhile no heartbeat is written, so every screen shows monitoring degraded.
- Any other failure that escaped the per-message guards (the bulk progress path has no savepoint of its own
  in a batch: its failure is one of them) sends the batch through message by message, so only the message
  at fault is dead-lettered.
- With bridges sharing the pumps, every transaction that applies messages is fenced before it commits
  (`fence`, `slots.SlotLinks.fence`): a batch whose slot was taken over meanwhile raises `FenceLost`, is rolled
  back and left unacknowledged, never dead-lettered or retried here (the worker lets the slot go).
- A redelivered message (MQTT DUP: the broker hands back what an earlier run never acknowledged, perhaps
  because that message took the process down) has its tries counted in the database before they begin.
  First tries are committed with their batch (one insert counts them all, the batch's commit forgets
  them). A message tried before goes alone, its try counted alone (the messages between such ones still
  go together), so the message that takes the process down is isolated; one begun `max_tries` times
  without finishing is dead-lettered (`repeated_failure`) instead of being tried for ever.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, ProgrammingError, connection, transaction

from devices.ingest_selectors import delivery_attempts_known
from devices.services.records import delivery_attempt_begin, delivery_attempts_end, delivery_attempts_first
from realtime import metrics
from realtime.bridge.batch import BatchIngest, message_refuse
from realtime.bridge.guard import INFRASTRUCTURE_ERRORS, FenceLost, infrastructure_fault, message_key
from realtime.bridge.ingest import REJECTED, InboundMessage

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Stopping(Exception):
    """The bridge is shutting down while a commit waits to be retried: leave the messages unacknowledged."""


class Committer:
    """Commits batches through `ingest`; hands each committed slice to `on_committed(messages, outcomes)`."""

    def __init__(
        self, *, ingest: BatchIngest, on_committed: Callable[[list[InboundMessage], Counter[str]], None],
        stop: threading.Event, max_tries: int, on_rollback: Callable[[], None] = lambda: None,
        fence: Callable[[list[InboundMessage]], None] = lambda messages: None,
    ) -> None:  # fmt: skip
        self.ingest = ingest
        self.fence = fence
        self.on_committed = on_committed
        self.on_rollback = on_rollback
        self.stop = stop
        self.max_tries = max_tries
        self.stalled_since: float | None = None
        self.last_commit_s = 0.0  # how long the last batch's commit took (the next batch's window, BatchLimits)

    def commit(self, batch: list[InboundMessage]) -> None:
        """Commit a batch (see the module's docstring for when it goes message by message)."""
        try:
            keys = [message_key(m.topic, m.payload) if m.redelivered else "" for m in batch]
            suspects = set()
            if any(keys):
                suspects = self._transact(lambda: delivery_attempts_known([k for k in keys if k]), size=len(batch))
            for run, suspect in _runs(list(zip(batch, keys, strict=True)), suspects):
                if suspect:  # a run before this one died while trying it: alone, its try counted
                    self._one_by_one(run, count_tries=True)
                else:
                    self._commit_run(run)
        except Stopping:
            logger.info("stopping with messages of a batch of %d unacknowledged (the broker keeps them)", len(batch))

    def _commit_run(self, run: list[tuple[InboundMessage, str]]) -> None:
        batch = [message for message, _ in run]
        tried = {key: message.topic for message, key in run if key}
        if tried:
            self._transact(lambda: delivery_attempts_first(topics_by_key=tried), size=len(batch))
        started = time.monotonic()
        try:
            outcomes = self._transact(lambda: self._apply(batch, list(tried)), size=len(batch))
        except (Stopping, FenceLost):
            raise
        except Exception:  # escaped every per-message guard: find the message at fault
            logger.exception("batch of %d failed; committing its messages one by one", len(batch))
            self._one_by_one(run, count_tries=bool(tried))
            return
        self.last_commit_s = time.monotonic() - started
        self.on_committed(batch, outcomes)

    def _apply(self, batch: list[InboundMessage], tried: list[str]) -> Counter[str]:
        outcomes = self.ingest.run(batch, bulk_savepoint=False)  # a failure: the batch goes one by one (below)
        if tried:
            delivery_attempts_end(keys=tried)
        self.fence(batch)
        return outcomes

    def _one_by_one(self, run: list[tuple[InboundMessage, str]], *, count_tries: bool) -> None:
        for message, _ in run:
            self.on_committed([message], self._commit_one(message, count_tries=count_tries))

    def _commit_one(self, message: InboundMessage, *, count_tries: bool) -> Counter[str]:
        key = message_key(message.topic, message.payload)
        if count_tries and message.redelivered:
            tries = self._transact(lambda: delivery_attempt_begin(key=key, topic=message.topic), size=1)
            if tries > self.max_tries:
                detail = f"began {tries - 1} times without finishing (the bridge stopped each time)"
                return self._transact(lambda: self._refuse(message, key, "repeated_failure", detail), size=1)
        try:
            return self._transact(lambda: self._apply_one(message, key, count_tries and message.redelivered), size=1)
        except (Stopping, FenceLost):
            raise
        except Exception as exc:  # this one message is at fault: dead-letter it and go on
            logger.exception("message failed", extra={"topic": message.topic[:200]})
            detail = repr(exc)
            return self._transact(lambda: self._refuse(message, key, "internal_error", detail), size=1)

    def _apply_one(self, message: InboundMessage, key: str, count_tries: bool) -> Counter[str]:
        outcomes = self.ingest.run([message])
        if count_tries:
            delivery_attempts_end(keys=[key])
        self.fence([message])
        return outcomes

    def _refuse(self, message: InboundMessage, key: str, reason: str, detail: str) -> Counter[str]:
        message_refuse(message, reason=reason, detail=detail)
        delivery_attempts_end(keys=[key])
        self.fence([message])
        return Counter({REJECTED: 1})

    def _transact(self, work: Callable[[], T], *, size: int) -> T:
        """`work()` in one transaction; an infrastructure failure is retried with backoff until it passes."""
        attempt = 0
        while True:
            try:
                with transaction.atomic():
                    result = work()
                self._resumed()
                return result
            except (*INFRASTRUCTURE_ERRORS, ProgrammingError, IntegrityError) as exc:
                if not infrastructure_fault(exc):  # a statement's or a row's own fault: the message's, found one by one
                    raise
                self.on_rollback()
                attempt += 1
                self._stalled(exc, size)
                if not connection.in_atomic_block:  # reconnect next time (a caller's transaction keeps its own)
                    connection.close()
                if self.stop.wait(min(5.0, 0.1 * 2**attempt)):
                    raise Stopping from exc

    def _stalled(self, exc: Exception, size: int) -> None:
        metrics.BATCH_RETRIES.inc()
        if self.stalled_since is None:
            self.stalled_since = time.monotonic()
            metrics.DATABASE_STALLED.set(1)
            logger.error("%d messages not committed (%s); retrying them unacknowledged", size, exc)
        else:
            logger.warning("%d messages still not committed (%s); retrying", size, exc)

    def _resumed(self) -> None:
        if self.stalled_since is not None:
            logger.warning("database back after %.1fs", time.monotonic() - self.stalled_since)
            self.stalled_since = None
            metrics.DATABASE_STALLED.set(0)


def _runs(items: list[tuple[InboundMessage, str]], suspects: set[str]):
    """The batch in order as runs: each suspect alone (True), the messages between them together (False)."""
    run: list[tuple[InboundMessage, str]] = []
    for message, key in items:
        if key in suspects:
            if run:
                yield run, False
                run = []
            yield [(message, key)], True
        else:
            run.append((message, key))
    if run:
        yield run, False
