"""Per-pump budgets for every topic but routine progress: a flooding pump's excess is shed, counted and summed up.

Routine progress has its own guard (`flood.py`). Every other message of a pump pays into token buckets per
pump, decided on the raw topic before any parsing: `alarm` (its `error` topic) counts messages; `report`
(status, infusion, completion, actions, bolus, test, non-routine progress) counts messages and, in
`report_bytes`, their payloads' bytes, so a pump padding its reports at the report budget's rate is shed over
their bytes (an alarm is never shed for its bytes: its form is no reason to lose it). A pump within its budgets
never notices them (a real pump sends a few of these a minute); one above them has the excess shed:
acknowledged, counted (`pumpstream_bridge_budget_shed_total{kind,reason}`, the heartbeat's `budgetShed`),
logged once a minute, and summed up once per batch as one high `alarm_flood` for that pump, which names
the alarm types it shed (the highest priority ones, the newest within one; each alarm's type and severity read
from its raw bytes, or from the message decoded when they do not show its type), so what the pump said is never
silently lost. A message is admitted or
shed once (on the worker's intake, `fair.py`); the summary is made from the batch's shed messages
(`ShedSummary`), so a batch retried after a rollback counts the same messages again, no more, no fewer.
The newest report of each kind per pump in an intake is never shed, so a flooding pump's state stays
current; but that exemption passes at most once per `EXEMPT_EVERY_S` per pump and kind (issue 15: a pump whose
reports each came in an intake of their own passed every budget). A newest report over its budgets within that
second is *held back*, neither admitted nor shed (the fair queue keeps it, unacknowledged, ahead of its pump's
later messages): superseded (shed) when a newer one of its kind comes, else applied once the second is over, or
at once ahead of an alarm of its pump that passes (an alarm never waits behind a held report).
A backlog is no flood: after the bridge was away from the broker (a lost link, a restart) each pump's buckets are
credited that time's budget for the messages that waited meanwhile (`flood.TimeAway`).
Alarms are also bounded in number: a pump with `max_active` distinct active alarms gets no new one (a
repeat of an active alarm or a clearing still passes; a clearing not literally `X_cleared` only if it clears an
active alarm, for otherwise it is raised as an alarm); the refused alarm is counted into its `alarm_flood` too.
"""

import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

from django.conf import settings

from devices.ingest_selectors import alarm_keys_active
from devices.services.alarm_keys import (
    alarm_is_clearing,
    alarm_is_literal_clearing,
    device_alarm_key,
    priority_from_severity,
    types_cleared_by,
)
from devices.services.alarm_rules import UNREADABLE_ALARM
from devices.services.protection import ALARM_FLOOD
from devices.states import ALARM_PRIORITY_RANK, AlarmPriority
from protocol import topics
from protocol.safejson import JsonRefused, json_decode
from protocol.salvage import payload_salvage
from protocol.schemas import MAX_TYPE_TEXT, PayloadError, payload_decode, payload_parse
from realtime import metrics
from realtime.bridge.flood import EXEMPT_EVERY_S, HELD, TimeAway, TokenBucket, routine_progress_sender
from realtime.bridge.ingest import CheckedMessage, InboundMessage

logger = logging.getLogger(__name__)

MAX_PUMPS_TRACKED = 20_000
LOG_EVERY_S = 60.0
ALARM, REPORT, REPORT_BYTES = "alarm", "report", "report_bytes"  # the buckets' names, per pump
# What a shed message was over: the metric's and the log's `reason`
OVER_MESSAGES, OVER_BYTES, OVER_ACTIVE_ALARMS = "budget", "byte_budget", "active_alarms"
SHED_TYPES_KEPT = 10  # the alarm types a batch's summary names (`alarm_flood` names as many)
RAW_ALARM_TYPE = re.compile(rb'"type"\s*:\s*"((?:[^"\\]|\\.){1,200})"')  # escapes undone after (`_raw_type`)
RAW_SEVERITY = re.compile(rb'"severity"\s*:\s*"([^"\\]{1,32})"')
RAW_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)  # a JSON string in raw bytes, escapes included
RAW_MATCHES_TRIED = 4  # raw matches of a field tried for one at the payload's top level, before decoding instead
SHED_DECODED_MAX = 16  # shed alarms per pump and batch the raw reader missed, decoded in full (`_decoded`)


@dataclass(frozen=True)
class Budget:
    """A token bucket's rate (messages, or payload bytes, per second on average) and burst; rate 0 turns it off."""

    rate_per_s: float
    burst: float


class PumpBudgets:
    """Admits each pump's alarms and reports within their budgets; counts (metrics, log) what it sheds."""

    def __init__(
        self, *, alarm: Budget, report: Budget, max_active_alarms: int, report_bytes: Budget = Budget(0.0, 1.0)
    ) -> None:
        self.budgets = {ALARM: alarm, REPORT: report, REPORT_BYTES: report_bytes}
        self.max_active_alarms = max_active_alarms
        self.buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()  # (device id, budget name)
        self.logged_at: dict[tuple[str, str], float] = {}  # (device id, budget over): when last logged
        self.shed_total = 0
        self.away: tuple[TimeAway, ...] = ()  # the bridge's times away whose backlog may still arrive (the worker's)
        self.exempt_at: OrderedDict[tuple[str, str], float] = OrderedDict()  # (device id, kind): newest passed over
        self.held: dict[tuple[str, str], tuple[InboundMessage, str]] = {}  # (device id, kind): (held report, over)

    def admit_batch(self, batch: list[InboundMessage], *, now: float | None = None, hold: bool = True) -> list:
        """Per message, True (admitted), False (shed: the batch's `ShedSummary` names it in `alarm_flood`) or `HELD`:
        the newest report of its kind over its budgets when that exemption passed less than `EXEMPT_EVERY_S` ago.
        A held report is given again with the next intake (ahead of it, `fair.FairQueue`): it pays nothing again,
        and is shed if a newer one of its kind came, else passes once the exemption does (`now`: the turn's clock)
        or when an alarm of its pump passes after it. `hold=False` (a batch run on its own, no later turn): it passes.
        """
        senders = [_budgeted_sender(message) for message in batch]
        newest = {(sender, kind): index for index, (sender, kind) in enumerate(senders) if sender and kind != "error"}
        verdicts: list[bool | None] = []
        for index, (message, (device_id, kind)) in enumerate(zip(batch, senders, strict=True)):
            if device_id is None:
                verdicts.append(True)
                continue
            held = self.held.pop((device_id, kind), None) if self.held else None
            over = held[1] if held and held[0] is message else self._over(device_id, kind, message)
            if not over:
                verdicts.append(True)
                continue
            clock = max(message.received_at.timestamp(), now or 0.0)
            is_newest = newest.get((device_id, kind)) == index
            if is_newest and (self._exempt(device_id, kind, clock) or not hold):
                verdicts.append(True)
            elif is_newest:
                self.held[(device_id, kind)] = (message, over)
                verdicts.append(HELD)
            else:
                self.count_shed(device_id, kind, clock, over=over)
                verdicts.append(False)
        return self._released_by_alarms(batch, senders, verdicts) if HELD in verdicts else verdicts

    def _released_by_alarms(self, batch: list[InboundMessage], senders: list, verdicts: list) -> list:
        """A held report passes at once when an alarm of its pump passes after it (its order kept, the alarm not held
        up): at most as often as the alarm budget lets alarms through."""
        alarms = {sender: index for index, ((sender, kind), ok) in enumerate(zip(senders, verdicts, strict=True))
                  if kind == topics.ERROR and ok}  # fmt: skip
        for index, ((device_id, kind), verdict) in enumerate(zip(senders, verdicts, strict=True)):
            if verdict is HELD and alarms.get(device_id, -1) > index:
                del self.held[(device_id, kind)]
                self.exempt_at[(device_id, kind)] = batch[index].received_at.timestamp()
                verdicts[index] = True
        return verdicts

    def _exempt(self, device_id: str, kind: str, clock: float) -> bool:
        """Whether the newest report of a kind over its budgets may pass now (once per `EXEMPT_EVERY_S`): noted."""
        key = (device_id, kind)
        if clock - self.exempt_at.get(key, float("-inf")) < EXEMPT_EVERY_S:
            return False
        self.exempt_at.pop(key, None)
        self.exempt_at[key] = clock
        if len(self.exempt_at) > MAX_PUMPS_TRACKED:
            self.exempt_at.popitem(last=False)
        return True

    def alarm_admitted(self, checked: CheckedMessage, clock: float) -> bool:
        """False (and counted as shed) for a new alarm of a pump that has `max_active_alarms` active ones."""
        if checked.kind != topics.ERROR or self.max_active_alarms <= 0:
            return True
        reported = checked.report.type
        if alarm_is_literal_clearing(reported):
            return True
        key = device_alarm_key(reported)  # the key its alarm gets (a server type's: `device_...`)
        error_code = str(checked.report.errorCode or "")[:64]  # as `alarm_raise` stores it: each code is an alarm
        active = {pair for pair in alarm_keys_active(device_id=checked.device_id) if pair[0] != ALARM_FLOOD}
        cleared = set(types_cleared_by(reported))  # what `_clearing_apply` clears: its own errorCode, or any without
        if alarm_is_clearing(reported) and any(type_key in cleared and (not error_code or code == error_code)
                                               for type_key, code in active):  # fmt: skip
            return True  # a clearing in free text that clears an active alarm; one clearing nothing is an alarm
        if (key, error_code) in active or len(active) < self.max_active_alarms:
            return True
        self.count_shed(checked.device_id, topics.ERROR, clock, over=OVER_ACTIVE_ALARMS)
        return False

    def count_shed(self, device_id: str, kind: str, clock: float, *, over: str = OVER_MESSAGES) -> None:
        """The metric, the heartbeat's total and a log line per pump and budget per minute (the summary is the
        batch's); `over`: the budget the message was over."""
        self.shed_total += 1
        metrics.BUDGET_SHED.labels(kind=kind, reason=over).inc()
        if clock - self.logged_at.get((device_id, over), float("-inf")) >= LOG_EVERY_S:
            self.logged_at[(device_id, over)] = clock
            logger.warning("pump flooding: %s messages over its %s shed", kind, _OVER_TEXT[over],
                           extra={"device_id": device_id, "reason": over})  # fmt: skip

    def _over(self, device_id: str, kind: str, message: InboundMessage) -> str:
        """The budget a pump's message is over, paying into its buckets ("" within them): an alarm's count; a
        report's count, then its payload's bytes, at most MAX_PAYLOAD_BYTES (a larger one is refused `too_large`
        unread and nothing of it stored: it is rejected with that reason, never shed for its size; a report shed over
        its count pays no bytes)."""
        clock = message.received_at.timestamp()
        if kind == topics.ERROR:
            return "" if self._take(device_id, ALARM, clock) else OVER_MESSAGES
        if not self._take(device_id, REPORT, clock):
            return OVER_MESSAGES
        cost = min(len(message.payload), settings.PUMPSTREAM["MAX_PAYLOAD_BYTES"])
        return "" if self._take(device_id, REPORT_BYTES, clock, cost=cost) else OVER_BYTES

    def _take(self, device_id: str, name: str, clock: float, *, cost: float = 1.0) -> bool:
        """A token (or `cost` of them, at most the burst: any one message can pass a full bucket) from a bucket."""
        budget = self.budgets[name]
        if budget.rate_per_s <= 0:
            return True
        bucket = self.buckets.pop((device_id, name), None) or TokenBucket(budget.burst, clock)
        self.buckets[(device_id, name)] = bucket
        if len(self.buckets) > MAX_PUMPS_TRACKED * len(self.budgets):
            self.buckets.popitem(last=False)
        cost = min(cost, budget.burst)
        return bucket.take(clock, rate_per_s=budget.rate_per_s, burst=budget.burst, away=self.away, cost=cost)


class ShedSummary:
    """What one batch shed over the budgets, per pump: counts per topic kind and the alarm types it names (at most
    `SHED_TYPES_KEPT`, with their priorities: the highest priority ones, the newest within one). A shed clearing
    literally `X_cleared` is counted, never named: it is no alarm, and named high it pushed real alarms out."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.types: dict[str, dict[str, str]] = {}  # per pump, type: priority, oldest first
        self.unnamed: set[str] = set()  # the pumps that shed more types than are named
        self.decoded: Counter[str] = Counter()  # per pump, the shed alarms decoded in full

    def add(self, device_id: str, kind: str, alarm_type: str | None = None, severity: object = None) -> None:
        """One shed message; an alarm's type named with the priority of its severity (none or unknown: high)."""
        self.counts.setdefault(device_id, Counter())[kind] += 1
        if alarm_type and not alarm_is_literal_clearing(alarm_type):
            self._name(device_id, alarm_type[:64], priority_from_severity(severity))

    def _name(self, device_id: str, alarm_type: str, priority: str) -> None:
        types = self.types.setdefault(device_id, {})
        before = types.pop(alarm_type, priority)  # re-inserted: the newest
        types[alarm_type] = priority if ALARM_PRIORITY_RANK[priority] >= ALARM_PRIORITY_RANK[before] else before
        if len(types) > SHED_TYPES_KEPT:  # the lowest priority's oldest goes (`min` finds the first of equals)
            del types[min(types, key=lambda name: ALARM_PRIORITY_RANK[types[name]])]
            self.unnamed.add(device_id)

    def add_message(self, message: InboundMessage) -> None:
        """A message the budgets shed on its raw topic: an alarm's type and severity read from its raw bytes, or,
        when they do not show it, from the message decoded in full as the bridge would (`_decoded`)."""
        device_id, kind = _budgeted_sender(message)
        if device_id is None:
            return
        if kind != topics.ERROR:
            self.add(device_id, kind)
            return
        self.counts.setdefault(device_id, Counter())[kind] += 1
        payload = message.payload[: settings.PUMPSTREAM["MAX_PAYLOAD_BYTES"]]
        alarm_type, severity, raw = _raw_type(payload), None, True
        if alarm_type is None:
            read = self._decoded(device_id, message.payload)
            if read is None:
                return
            (alarm_type, severity), raw = read, False
        if alarm_is_literal_clearing(alarm_type):
            return
        alarm_type = alarm_type[:64]
        types = self.types.get(device_id, {})
        if types.get(alarm_type) == AlarmPriority.HIGH and next(reversed(types)) == alarm_type:
            return  # a pump repeating its newest high alarm: nothing to change (its severity not even read)
        severity = _raw_field(RAW_SEVERITY, payload) if raw else severity
        self._name(device_id, alarm_type, priority_from_severity(severity))

    def _decoded(self, device_id: str, payload: bytes) -> tuple[str, str | None] | None:
        """(type, severity) of a shed alarm the raw reader missed (an escape, a number, no type, past the bytes read),
        as the bridge would have read it: `unreadable_alarm` (high) when it could not have. At most `SHED_DECODED_MAX`
        per pump and batch (decoding costs what admitting does); beyond, None and the pump marked as having shed
        more types than are named."""
        if self.decoded[device_id] >= SHED_DECODED_MAX:
            self.unnamed.add(device_id)
            return None
        self.decoded[device_id] += 1
        try:
            document = payload_decode(payload, max_bytes=settings.PUMPSTREAM["MAX_PAYLOAD_BYTES"])
        except PayloadError:
            return UNREADABLE_ALARM, None
        try:
            report = payload_parse(topics.ERROR, document)
        except PayloadError:
            report = payload_salvage(topics.ERROR, document)  # refused for its envelope alone: raised as itself
        return (UNREADABLE_ALARM, None) if report is None else (report.type, report.severity)

    def items(self) -> list[tuple[str, Counter[str], dict[str, str], bool]]:
        """Per pump: the counts, the types named and whether more types were shed than named."""
        return [(device_id, counts, self.types.get(device_id, {}), device_id in self.unnamed)
                for device_id, counts in self.counts.items()]  # fmt: skip


_OVER_TEXT = {OVER_MESSAGES: "budget", OVER_BYTES: "byte budget", OVER_ACTIVE_ALARMS: "active alarms bound"}


def _budgeted_sender(message: InboundMessage) -> tuple[str | None, str]:
    """(device id, topic kind) of a message under a budget; (None, "") for routine progress or a bad topic."""
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return None, ""
    if parsed.kind == topics.PROGRESS and routine_progress_sender(message) is not None:
        return None, ""
    return parsed.device_id, parsed.kind


def _raw_type(payload: bytes) -> str | None:
    """A shed alarm's type read from its raw bytes without parsing the message (its escapes undone, trimmed as the
    schema trims it); None when it is not a string of at most 200 characters there, or not text a database stores."""
    found = _top_level(RAW_ALARM_TYPE, payload)
    if found is None:
        return None
    try:
        text = json_decode(b'"' + found.group(1) + b'"')
    except JsonRefused:
        return None
    return text.strip()[:MAX_TYPE_TEXT] or None


def _raw_field(pattern: re.Pattern[bytes], head: bytes) -> str | None:
    """A text field of a shed alarm, read from its first bytes without parsing (best effort, for the summary)."""
    found = _top_level(pattern, head)
    return found.group(1).decode("utf-8", errors="replace") if found else None


def _top_level(pattern: re.Pattern[bytes], payload: bytes) -> re.Match[bytes] | None:
    """The first match of a field of the payload's own object, never one of the same name nested in it (a sensor's
    `type` and `severity` in `details`, written first: review 23); None when the first `RAW_MATCHES_TRIED` matches
    are not at its top level (the caller then decodes the message, or reads no severity: high). A match's depth is
    the brackets open before it, its strings' contents left out (C-speed: `re.sub` and `bytes.count`)."""
    for tried, found in enumerate(pattern.finditer(payload)):
        if tried >= RAW_MATCHES_TRIED:
            return None
        before = RAW_STRING.sub(b'""', payload[: found.start()])
        opened = before.count(b"{") + before.count(b"[") - before.count(b"}") - before.count(b"]")
        if opened == 1 and before.lstrip().startswith(b"{"):
            return found
    return None
