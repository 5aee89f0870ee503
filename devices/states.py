"""The state machines of pumps, infusion sessions, commands and alarms, each with one table of legal transitions."""

from django.db import models


class Connectivity(models.TextChoices):
    """How recently and how truthfully we have heard from a pump (derived, never stored)."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


class Presence(models.TextChoices):
    """What a pump last said about its own connection (`online` / `offline` status, or its Last Will)."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


class PumpState(models.TextChoices):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"


PUMP_INFUSING_STATES = (PumpState.RUNNING, PumpState.PAUSED)  # the pump itself has an infusion under way
# The server's alarms of a pump infusing with no order on record (`services/evidence.py`).
UNORDERED_ALARMS = ("infusing_without_order", "infusing_after_stop")

# The pump's state is what the pump reports (or what its session's reported end implies), never what the server
# commands, so every move between the three is legal: a paused pump can be seen first after a restart of the bridge
# (idle to paused), a legacy pump's only word after a pause may be `running` or `stopped`. The table is still the one
# place that says so, and `pump_state_set` (the one writer) refuses anything it does not list.
PUMP_TRANSITIONS: dict[str, frozenset[str]] = {
    PumpState.IDLE: frozenset({PumpState.RUNNING, PumpState.PAUSED}),
    PumpState.RUNNING: frozenset({PumpState.PAUSED, PumpState.IDLE}),
    PumpState.PAUSED: frozenset({PumpState.RUNNING, PumpState.IDLE}),
}


class SessionStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the pump restarted (or went idle) mid-infusion, or a person ended a ghost


# The groupings every module uses (services, selectors, transports, tests and, through `json_script`, the pages):
# a session is active (at most one per pump) until it ends; while running or paused it is under way at the pump.
ACTIVE_SESSION_STATUSES = (SessionStatus.PENDING, SessionStatus.RUNNING, SessionStatus.PAUSED)
SESSION_ON_PUMP_STATUSES = (SessionStatus.RUNNING, SessionStatus.PAUSED)
SESSION_ENDED_STATUSES = (
    SessionStatus.COMPLETED, SessionStatus.STOPPED, SessionStatus.REJECTED,
    SessionStatus.TIMED_OUT, SessionStatus.CANCELLED, SessionStatus.INTERRUPTED,
)  # fmt: skip

SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    SessionStatus.PENDING: frozenset(
        {
            SessionStatus.RUNNING,
            SessionStatus.REJECTED,
            SessionStatus.TIMED_OUT,
            SessionStatus.CANCELLED,
            SessionStatus.INTERRUPTED,
        }
    ),
    SessionStatus.RUNNING: frozenset(
        {SessionStatus.PAUSED, SessionStatus.COMPLETED, SessionStatus.STOPPED, SessionStatus.INTERRUPTED}
    ),
    SessionStatus.PAUSED: frozenset(
        {SessionStatus.RUNNING, SessionStatus.COMPLETED, SessionStatus.STOPPED, SessionStatus.INTERRUPTED}
    ),
    # Evidence wins: a late confirmation, or the pump's reports after a restart, show it running that order, or
    # holding it paused (a `paused` status naming it: review 22, finding 5).
    SessionStatus.TIMED_OUT: frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED}),
    SessionStatus.CANCELLED: frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED}),
    SessionStatus.INTERRUPTED: frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED}),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.STOPPED: frozenset(),
    SessionStatus.REJECTED: frozenset(),
}


class CommandKind(models.TextChoices):
    START_INFUSION = "START_INFUSION"
    PAUSE_INFUSION = "PAUSE_INFUSION"
    RESUME_INFUSION = "RESUME_INFUSION"
    STOP_INFUSION = "STOP_INFUSION"


class CommandState(models.TextChoices):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # its session ended first


COMMAND_UNSETTLED_STATES = (CommandState.QUEUED, CommandState.SENT, CommandState.DELIVERED)
START_DEADLINE_EXTRA_S = 10.0  # the contract: START ends within the confirmation timeout + 10 s of its publication
# How far ahead of the housekeeping bridge's clock a stored moment may lie and be left alone: another bridge's clock a
# little ahead (NTP keeps hosts within milliseconds), never a clock stepped (`heard.py`, `deadlines_ahead.py`).
AHEAD_TOLERANCE_S = 1.0

COMMAND_TRANSITIONS: dict[str, frozenset[str]] = {
    # `delivered`: a START handed to the broker (`published_at`) the pump received before its PUBACK was recorded
    CommandState.QUEUED: frozenset(
        {CommandState.SENT, CommandState.DELIVERED, CommandState.DONE, CommandState.EXPIRED, CommandState.FAILED}
        | {CommandState.SUPERSEDED}
    ),
    CommandState.SENT: frozenset(
        {CommandState.DELIVERED, CommandState.DONE, CommandState.FAILED, CommandState.EXPIRED, CommandState.SUPERSEDED}
    ),
    CommandState.DELIVERED: frozenset(
        {CommandState.DONE, CommandState.FAILED, CommandState.EXPIRED, CommandState.SUPERSEDED}
    ),
    # `done`: a PAUSE, RESUME or STOP failed although handed to the broker (a late PUBACK), that the pump reports
    # carrying out within its deadline (`commands.failed_within_deadline`, `status.session_move_reported`)
    CommandState.FAILED: frozenset({CommandState.DONE}),
    CommandState.EXPIRED: frozenset(),
    CommandState.DONE: frozenset(),
    CommandState.SUPERSEDED: frozenset(),
}


class AlarmPriority(models.TextChoices):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


ALARM_PRIORITY_RANK = {AlarmPriority.HIGH: 3, AlarmPriority.MEDIUM: 2, AlarmPriority.LOW: 1}


class AlarmState(models.TextChoices):
    ACTIVE = "active"
    CLEARED = "cleared"


ALARM_TRANSITIONS: dict[str, frozenset[str]] = {
    AlarmState.ACTIVE: frozenset({AlarmState.CLEARED}),
    AlarmState.CLEARED: frozenset(),
}


class AlarmSource(models.TextChoices):
    DEVICE = "device"
    SERVER = "server"


# The server's own alarm types (contract v1.1 "Alarms"; `docs/clinical-rules.md`, "Server alarms"). Their type keys
# belong to the server: a pump's alarm named alike is keyed `device_<key>` (`services.alarms.device_alarm_key`), so a
# server check or clear by type never meets a pump's alarm. The database refuses a device alarm keyed by one.
SERVER_ALARM_TYPES = frozenset({
    "alarm_flood", "command_not_carried_out", "communication_lost", "confirmed_late", "delivery_divergence",
    "device_degraded", "dose_limit_exceeded", "escalation_failed", "infusing_after_stop", "infusing_without_order",
    "infusion_interrupted", "parameter_mismatch", "parameters_unverified", "unreadable_alarm", "unreadable_report",
})  # fmt: skip
ALARM_FLOOD = "alarm_flood"  # the server's summary of a flooding pump's shed messages (`services/protection.py`)
# Its details' keys timing the news beyond the alarm types it remembers: when such news was last signalled, and
# since when news waits for the end of that interval (`ALARM_FLOOD_NEWS_INTERVAL_S`; absent: none waits).
FLOOD_NEWS_SIGNALLED = "newsSignalledAt"
FLOOD_NEWS_DEFERRED = "newsDeferredSince"
# Its counts reach the screens (a `device:alarm` change, an event-log row) at most once per FLOOD_COUNTS_EVERY_S unless
# it brings news: when they last did, and what waits to be shown (`{since, repeats, message, lastRaisedAt}`; absent:
# nothing): the row's own count, text and last raised stay those of its last change, so a snapshot matches the live
# screens (`alarm_held_counts_fold` applies them). Review 23: a pump pacing its junk alarms one per bridge batch had
# every shed alarm sent to every screen of its ward.
FLOOD_COUNTS_SENT = "countsSentAt"
FLOOD_COUNTS_HELD = "countsHeld"
FLOOD_COUNTS_EVERY_S = 1.0


class AlarmResolveReason(models.TextChoices):
    """Why a user resolved (cleared by hand) an alarm the pump or the server would not clear."""

    CHECKED_AT_PUMP = "checked_at_pump", "Checked at the pump: condition gone"
    INFUSION_ENDED = "infusion_ended", "The infusion has ended"
    PUMP_REPLACED = "pump_replaced", "Pump replaced or taken out of use"
    FALSE_ALARM = "false_alarm", "False alarm (explained in the note)"
    OTHER = "other", "Other (explained in the note)"


class SilenceEnd(models.TextChoices):
    """Why a ward's silence ended before its time (a silence that simply ran out has no end reason)."""

    BROKEN = "broken", "A new alarm sounded through it"
    ENDED = "ended", "Ended by a user"
    RENEWED = "renewed", "Replaced by a new silence"


class DeliveryState(models.TextChoices):
    """An escalation webhook's delivery: tried until delivered, dead-lettered after its tries, or withdrawn."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead", "Dead-lettered"
    WITHDRAWN = "withdrawn", "Withdrawn (acknowledged or cleared first)"


class ReadBack(models.TextChoices):
    """How a pump's confirmed parameters compare with the order (contract v1.1 read-back)."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNVERIFIED = "unverified"


def is_legal(table: dict[str, frozenset[str]], current: str, target: str) -> bool:
    """Whether `current` → `target` is in the transition table."""
    return target in table.get(current, frozenset())
