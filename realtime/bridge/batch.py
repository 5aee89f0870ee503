"""One batch of messages inside the worker's transaction: routine progress in bulk, everything else one by one.

Order per pump is kept: the routine progress gathered so far is applied before any other message is,
so a status, an alarm or a confirmation always sees the progress that arrived before it.
"""

import logging
from collections import Counter

from django.db import transaction

from devices.services.protection import alarm_flood_raise
from devices.services.records import dead_letter_record, message_receipt_release
from devices.services.schema import schema_fault
from protocol import topics
from realtime.bridge.budgets import PumpBudgets, ShedSummary
from realtime.bridge.flood import HELD, ProgressFloodGuard
from realtime.bridge.guard import INFRASTRUCTURE_ERRORS, DeadLetterNotStored
from realtime.bridge.ingest import (
    IGNORED,
    REJECTED,
    CheckedMessage,
    InboundMessage,
    Prepared,
    Rejection,
    is_routine_progress,
    message_check,
    message_ingest,
    messages_prepare,
    prepared_after_status,
    reject,
    routine_progress_ingest,
)
from realtime.metrics import MESSAGES_DUPLICATE

logger = logging.getLogger(__name__)

SHED = "shed"
SHED_BY_GUARD, SHED_BY_BUDGET = "progress", "budget"  # `InboundMessage.shed`: what shed it ("" admitted)


class BatchIngest:
    """Applies a batch in the caller's transaction and counts the outcomes."""

    def __init__(self, guard: ProgressFloodGuard, budgets: PumpBudgets | None = None) -> None:
        self.guard = guard
        self.budgets = budgets

    def admit(self, messages: list[InboundMessage], *, now: float | None = None, hold: bool = True) -> None:
        """Decide, once and in arrival order, whether each undecided message passes the progress guard and
        its pump's budgets (on the raw message, before parsing); sets `message.shed`. A report the budgets hold back
        (`PumpBudgets.admit_batch`) or a routine progress the guard holds back (`ProgressFloodGuard.admit_batch`)
        stays undecided (None), to be given again with the next turn's intake."""
        undecided = [message for message in messages if message.shed is None]
        if not undecided:
            return
        guarded = self.guard.admit_batch(undecided, now=now, hold=hold)
        budgeted = self.budgets.admit_batch(undecided, now=now, hold=hold) if self.budgets else [True] * len(undecided)
        if self.guard.held:
            self.guard.release_before_alarms(undecided, guarded, budgeted)
        for message, progress_ok, budget_ok in zip(undecided, guarded, budgeted, strict=True):
            if progress_ok is HELD or budget_ok is HELD:
                continue
            message.shed = SHED_BY_GUARD if not progress_ok else "" if budget_ok else SHED_BY_BUDGET

    def run(self, batch: list[InboundMessage], *, bulk_savepoint: bool = True) -> Counter[str]:
        """Every message checked, shed, rejected or applied; returns the outcomes by name.

        What was shed over the budgets is summed up from the batch itself, so a retry after a rollback
        counts exactly the same messages (admission was decided once, see `admit`).
        `bulk_savepoint=False`: routine progress is applied without a savepoint of its own, and a failure of
        the bulk path propagates; the caller then rolls back and applies the batch's messages one at a time
        (as `Committer` does), which finds the message at fault as the savepoint's fallback would.
        """
        self.admit(batch, hold=False)  # decided already on the worker's intake; a batch run on its own holds none
        outcomes: Counter[str] = Counter()
        summary = ShedSummary()
        parsed = [(message, self._parse(message)) for message in batch]
        routine: list[tuple[InboundMessage, CheckedMessage]] = []
        prepared: list[Prepared] = []
        statuses: set[tuple[int | None, str]] = set()  # (pump, bootId) of the statuses applied: a reboot may be told
        for index, (message, checked) in enumerate(parsed):
            if message.shed:
                outcomes[SHED] += 1
                if message.shed == SHED_BY_BUDGET:
                    summary.add_message(message)
                continue
            if not isinstance(checked, CheckedMessage):
                outcomes[self._refuse(message, checked)] += 1
                continue
            if not is_routine_progress(checked) and not prepared:
                outcomes.update(self._routine(routine, bulk_savepoint))  # arrived first: claims its receipts first
                routine = []
                prepared = messages_prepare(_run_of_others(parsed[index:]))
            ready = prepared.pop(0) if not is_routine_progress(checked) else None
            if self.budgets and not self.budgets.alarm_admitted(checked, message.received_at.timestamp()):
                outcomes[SHED] += 1
                summary.add(checked.device_id, checked.kind, checked.report.type, checked.report.severity)
                if ready is not None and ready.new:
                    message_receipt_release(receipt=ready.receipt)
                continue
            if ready is None:
                routine.append((message, checked))
                continue
            outcomes[message_ingest(message, checked, prepared_after_status(ready, statuses))] += 1
            if checked.kind == topics.STATUS and checked.report.bootId:
                statuses.add((ready.device_pk, checked.report.bootId))
        outcomes.update(self._routine(routine, bulk_savepoint))
        self._summarise_floods(summary)
        return outcomes

    @staticmethod
    def _summarise_floods(summary: ShedSummary) -> None:
        """One `alarm_flood` (raised or counted) per pump whose messages were shed over its budgets."""
        for device_id, shed, alarm_types, unnamed in summary.items():
            try:
                alarm_flood_raise(device_id=device_id, shed=dict(shed), alarm_types=alarm_types, more_types=unnamed)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:  # guarded: the shed messages stay counted in the metrics and the log
                logger.exception("alarm_flood not raised", extra={"device_id": device_id})

    @staticmethod
    def _parse(message: InboundMessage) -> CheckedMessage | Exception | None:
        """The message checked (no database), or why not: None for an empty payload (ignored), else the error."""
        if message.shed or not message.payload:
            return None
        try:
            return message_check(message)
        except Rejection as rejection:
            return rejection
        except Exception as exc:  # the guarded catch-all of the checks: logged now, dead-lettered in its turn
            logger.exception("message check failed", extra={"topic": message.topic[:200]})
            return exc

    @staticmethod
    def _refuse(message: InboundMessage, failure: Exception | None) -> str:
        """Ignore an empty payload; dead-letter, count and log a message that failed its checks."""
        if failure is None:
            MESSAGES_DUPLICATE.labels(why="empty").inc()
            return IGNORED
        if isinstance(failure, Rejection):
            reject(message, failure.reason, failure.detail, failure.device_id, failure.document)
        else:
            message_refuse(message, reason="internal_error", detail=repr(failure))
        return REJECTED

    def _routine(self, routine: list[tuple[InboundMessage, CheckedMessage]], savepoint: bool = True) -> Counter[str]:
        """Routine progress in bulk in a savepoint; if the bulk path fails, each message on its own. Without the
        savepoint (`run`'s `bulk_savepoint`) a failure is the caller's: a savepoint and its release were about a
        tenth of a one-message batch's CPU (`bench/README.md`, 2026-12-05)."""
        if not routine:
            return Counter()
        if not savepoint:
            return routine_progress_ingest(routine)
        try:
            with transaction.atomic():
                return routine_progress_ingest(routine)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception:  # guarded: the one-by-one path then rejects exactly the message at fault
            logger.exception("bulk progress failed; applying %d messages one by one", len(routine))
        return Counter(message_ingest(message, checked) for message, checked in routine)


def _run_of_others(items: list) -> list[tuple[InboundMessage, CheckedMessage]]:
    """The checked messages to be applied one by one from the first up to the next routine progress (which is
    applied in bulk before the next of them); shed and refused ones left out."""
    run = []
    for message, checked in items:
        if message.shed or not isinstance(checked, CheckedMessage):
            continue
        if is_routine_progress(checked):
            break
        run.append((message, checked))
    return run


def message_refuse(message: InboundMessage, *, reason: str, detail: str, device_id: str = "") -> None:
    """Dead-letter a message whose handling failed, in its own savepoint (`reject`: counted, logged, alarmed).

    Should that fail for a fault of its own (an alarm it raises), the dead letter alone is stored, saying so; should
    even that fail, `DeadLetterNotStored`: the message is left unacknowledged and retried as for a database outage
    (review 34: an occlusion refused, its dead letter failed, and it was acknowledged all the same, kept by no one)."""
    if not device_id:
        try:
            device_id = topics.parse_device_topic(message.topic).device_id
        except topics.TopicError:
            device_id = ""
    try:
        with transaction.atomic():
            reject(message, reason, detail, device_id)
        return
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:  # the refusal's alarms or the dead letter itself failed: the dead letter alone next
        _raise_schema_fault(exc)
        logger.exception("dead letter not stored with its alarms", extra={"topic": message.topic[:200],
                                                                          "reason": reason})  # fmt: skip
        failure = exc
    try:
        with transaction.atomic():
            dead_letter_record(topic=message.topic, source=device_id or "unknown", reason=reason,
                               detail=f"its refusal failed: {failure!r:.150}; {detail}",
                               payload=message.payload)  # fmt: skip
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:
        _raise_schema_fault(exc)
        logger.error("dead letter not stored: the message is left unacknowledged and retried",
                     extra={"topic": message.topic[:200], "reason": reason})  # fmt: skip
        raise DeadLetterNotStored(f"dead letter not stored ({exc!r}) for {message.topic[:200]}") from exc


def _raise_schema_fault(exc: Exception) -> None:
    """A refusal failing for the schema ahead of the code (its alarm's or dead letter's table has a later release's
    NOT NULL column, review 36) is the database's fault: raised as such, the message unacknowledged and retried."""
    if (fault := schema_fault(exc)) is not None:
        raise fault from exc
