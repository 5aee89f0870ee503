"""Per-pump budgets for every topic but routine progress: a flooding pump's excess is shed, counted and summed up.

Routine progress has its own guard (`flood.py`). Every other message of a pump pays into one of two token
buckets per pump, decided on the raw topic before any parsing: `alarm` (its `error` topic) and `report`
(status, infusion, completion, actions, bolus, test, non-routine progress). A pump within its budgets
never notices them (a real pump sends a few of these a minute); one above them has the excess shed:
acknowledged, counted (`pumpstream_bridge_budget_shed_total{kind}`, the heartbeat's `budgetShed`),
logged once a minute, and summed up once per batch as one high `alarm_flood` for that pump, which names
the first alarm types it shed, so what the pump said is never silently lost. A message is admitted or
shed once (on the worker's intake, `fair.py`); the summary is made from the batch's shed messages
(`ShedSummary`), so a batch retried after a rollback counts the same messages again, no more, no fewer.
The newest report of each kind per pump in an intake is never shed, so a flooding pump's state stays
current. A backlog is no flood: after the bridge was away from the broker (a lost link, a restart) each
pump's buckets are credited that time's budget for the messages that waited meanwhile (`flood.TimeAway`).
Alarms are also bounded in number: a pump with `max_active` distinct active alarms gets no new one (a
repeat of an active alarm or a clearing still passes); the refused alarm is counted into its `alarm_flood`
too.
"""

import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

from devices.selectors import alarm_keys_active
from devices.services.alarms import CLEARED_SUFFIX, device_alarm_key
from devices.services.protection import ALARM_FLOOD
from protocol import topics
from realtime import metrics
from realtime.bridge.flood import TimeAway, TokenBucket, routine_progress_sender
from realtime.bridge.ingest import CheckedMessage, InboundMessage

logger = logging.getLogger(__name__)

MAX_PUMPS_TRACKED = 20_000
LOG_EVERY_S = 60.0
ALARM, REPORT = "alarm", "report"
SHED_TYPES_KEPT = 10  # the alarm types a summary names
RAW_ALARM_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]{1,64})"')


@dataclass(frozen=True)
class Budget:
    """A token bucket's rate (messages per second on average) and burst; rate 0 turns it off."""

    rate_per_s: float
    burst: float


class PumpBudgets:
    """Admits each pump's alarms and reports within their budgets; counts (metrics, log) what it sheds."""

    def __init__(self, *, alarm: Budget, report: Budget, max_active_alarms: int) -> None:
        self.budgets = {ALARM: alarm, REPORT: report}
        self.max_active_alarms = max_active_alarms
        self.buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()  # (device id, budget name)
        self.logged_at: dict[str, float] = {}
        self.shed_total = 0
        self.away: tuple[TimeAway, ...] = ()  # the bridge's times away whose backlog may still arrive (the worker's)

    def admit_batch(self, batch: list[InboundMessage]) -> list[bool]:
        """Per message, False when it is shed (the batch's `ShedSummary` then names it in `alarm_flood`)."""
        senders = [_budgeted_sender(message) for message in batch]
        newest = {(sender, kind): index for index, (sender, kind) in enumerate(senders) if sender and kind != "error"}
        admitted = []
        for index, (message, (device_id, kind)) in enumerate(zip(batch, senders, strict=True)):
            keep = device_id is None or newest.get((device_id, kind)) == index
            keep = self._take(device_id, kind, message) or keep
            if not keep:
                self.count_shed(device_id, kind, message.received_at.timestamp())
            admitted.append(keep)
        return admitted

    def alarm_admitted(self, checked: CheckedMessage, clock: float) -> bool:
        """False (and counted as shed) for a new alarm of a pump that has `max_active_alarms` active ones."""
        if checked.kind != topics.ERROR or self.max_active_alarms <= 0:
            return True
        key = device_alarm_key(checked.report.type)  # the key its alarm gets (a server type's: `device_...`)
        if key.endswith(CLEARED_SUFFIX):
            return True
        active = alarm_keys_active(device_id=checked.device_id) - {ALARM_FLOOD}  # the summary takes no place
        if key in active or len(active) < self.max_active_alarms:
            return True
        self.count_shed(checked.device_id, topics.ERROR, clock)
        return False

    def count_shed(self, device_id: str, kind: str, clock: float) -> None:
        """The metric, the heartbeat's total and a log line per pump per minute (the summary is the batch's)."""
        self.shed_total += 1
        metrics.BUDGET_SHED.labels(kind=kind).inc()
        if clock - self.logged_at.get(device_id, float("-inf")) >= LOG_EVERY_S:
            self.logged_at[device_id] = clock
            logger.warning("pump flooding: %s messages over its budget shed", kind,
                           extra={"device_id": device_id, "reason": "budget"})  # fmt: skip

    def _take(self, device_id: str | None, kind: str, message: InboundMessage) -> bool:
        if device_id is None:
            return True
        name = ALARM if kind == topics.ERROR else REPORT
        budget = self.budgets[name]
        if budget.rate_per_s <= 0:
            return True
        clock = message.received_at.timestamp()
        bucket = self.buckets.pop((device_id, name), None) or TokenBucket(budget.burst, clock)
        self.buckets[(device_id, name)] = bucket
        if len(self.buckets) > MAX_PUMPS_TRACKED:
            self.buckets.popitem(last=False)
        return bucket.take(clock, rate_per_s=budget.rate_per_s, burst=budget.burst, away=self.away)


class ShedSummary:
    """What one batch shed over the budgets, per pump: counts per topic kind and the first alarm types."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.types: dict[str, list[str]] = {}

    def add(self, device_id: str, kind: str, alarm_type: str | None = None) -> None:
        self.counts.setdefault(device_id, Counter())[kind] += 1
        types = self.types.setdefault(device_id, [])
        if alarm_type and alarm_type not in types and len(types) < SHED_TYPES_KEPT:
            types.append(alarm_type[:64])

    def add_message(self, message: InboundMessage) -> None:
        """A message the budgets shed on its raw topic (its alarm type read without parsing, while few are named)."""
        device_id, kind = _budgeted_sender(message)
        if device_id is None:
            return
        named = len(self.types.get(device_id, ())) >= SHED_TYPES_KEPT
        self.add(device_id, kind, _raw_alarm_type(message) if kind == topics.ERROR and not named else None)

    def items(self) -> list[tuple[str, Counter[str], list[str]]]:
        return [(device_id, counts, self.types.get(device_id, [])) for device_id, counts in self.counts.items()]


def _budgeted_sender(message: InboundMessage) -> tuple[str | None, str]:
    """(device id, topic kind) of a message under a budget; (None, "") for routine progress or a bad topic."""
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return None, ""
    if parsed.kind == topics.PROGRESS and routine_progress_sender(message) is not None:
        return None, ""
    return parsed.device_id, parsed.kind


def _raw_alarm_type(message: InboundMessage) -> str | None:
    """The `type` of a shed alarm, read from its first bytes without parsing (best effort, for the summary)."""
    found = RAW_ALARM_TYPE.search(message.payload[:300])
    return found.group(1).decode("utf-8", errors="replace") if found else None
