"""Prometheus counters and histograms the MQTT bridge increments (exposed by the ops endpoint)."""

from datetime import UTC, datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

# The counters below are this process's: they start from 0 here, and a restarted bridge counts anew (the operations
# page tells a drop in a total from a rate by this moment, which the heartbeat carries).
COUNTERS_SINCE = datetime.now(UTC)
# Whether the bridge holds the broker is not a gauge here: `/metrics` exposes its heartbeat row's `broker_connected`
# (`pumpstream/ops_metrics.py`), as `/ops/` and `/readyz` read it; a gauge set by each slot's link read 0 once a
# bridge sharing the pumps let one slot go, holding others.

MESSAGES_RECEIVED = Counter(
    "pumpstream_bridge_messages_received_total", "MQTT messages the bridge received, by topic kind", ["kind"]
)
MESSAGES_REJECTED = Counter(
    "pumpstream_bridge_messages_rejected_total", "MQTT messages the bridge rejected, by reason", ["reason"]
)
MESSAGES_DUPLICATE = Counter(
    "pumpstream_bridge_messages_duplicate_total", "Redelivered or replayed messages recognised and skipped", ["why"]
)
MESSAGES_LATE = Counter(
    "pumpstream_bridge_messages_late_total",
    "Messages numbered (seq) below one already applied under their pump's bootId: recorded, nothing rewound",
    ["kind"],
)  # fmt: skip
BATCH_SIZE = Histogram(
    "pumpstream_bridge_batch_size", "Messages committed per database transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)  # fmt: skip
PROCESSING_SECONDS = Histogram(
    "pumpstream_bridge_processing_seconds", "From receipt by the bridge to commit, per message",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip
BATCH_RETRIES = Counter("pumpstream_bridge_batch_retries_total", "Batches retried after a database error")
RECONNECTS = Counter("pumpstream_bridge_reconnects_total", "Connections to the broker after the first")
COMMANDS_PUBLISHED = Counter("pumpstream_bridge_commands_total", "Commands by outcome", ["outcome"])
PROGRESS_SHED = Counter(
    "pumpstream_bridge_progress_shed_total", "Routine progress messages shed because their pump flooded"
)
BUDGET_SHED = Counter(
    "pumpstream_bridge_budget_shed_total", "Messages other than routine progress shed over their pump's budget",
    ["kind", "reason"],
)  # fmt: skip
FIELDS_NOT_STORED = Counter(
    "pumpstream_bridge_fields_not_stored_total",
    "Messages whose unknown fields or free-form objects were cut to MAX_UNKNOWN_BYTES before being stored",
    ["kind"],
)  # fmt: skip
DATABASE_STALLED = Gauge(
    "pumpstream_bridge_database_stalled", "1 while the bridge cannot commit (database down, locked or full)"
)
SCHEMA_MIGRATIONS_UNAPPLIED = Gauge(
    "pumpstream_bridge_schema_migrations_unapplied",
    "Migrations of this code not applied to the database: the bridge waits for `migrate` before it consumes",
)
SESSION_TAKEN_OVER = Counter(
    "pumpstream_bridge_session_taken_over_total",
    "Times the broker gave this bridge's session to another client with its client id (MQTT 5 reason 142)",
)
PUBLISHER_WAKES = Counter("pumpstream_bridge_publisher_wakes_total", "Wakes sent to Daphne's publisher after commits")
ESCALATION_OUTCOMES_GIVEN_UP = Counter(
    "pumpstream_bridge_escalation_outcomes_given_up_total",
    "Escalation webhook outcomes given up (dead-lettered) after their recording kept failing",
)
HOUSEKEEPING_ROW_FAILURES = Counter(
    "pumpstream_bridge_housekeeping_row_failures_total",
    "Rows a housekeeping check could not handle (not the database's fault), each failure; the row is skipped a while",
    ["check"],
)
HOUSEKEEPING_ROWS_SKIPPED = Gauge(
    "pumpstream_bridge_housekeeping_rows_skipped", "Rows a housekeeping check skips after they failed", ["check"]
)
CHANGE_LOG_PRUNED = Counter("pumpstream_bridge_change_log_pruned_total", "Change-log entries deleted by housekeeping")
PRESENCE_UNVOUCHED = Counter(
    "pumpstream_bridge_presence_unvouched_total",
    "Pumps online by their presence, last heard before the broker restarted and not since: shown stale (no Will held)",
)
HEARD_AHEAD_PULLED_BACK = Counter(
    "pumpstream_bridge_heard_ahead_pulled_back_total",
    "Pumps and sessions whose moments of hearing lay ahead of the clock (it ran ahead) brought back to now",
)
DEADLINES_AHEAD_PULLED_BACK = Counter(
    "pumpstream_bridge_deadlines_ahead_pulled_back_total",
    "Alarms, commands, orders, ward silences and sockets whose deadlines' moments lay ahead of the clock (it ran "
    "ahead) brought back",
)


def registry_snapshot() -> list[dict]:
    """The bridge's metric families as plain data, carried in its heartbeat row to Daphne's `/metrics`."""
    return [
        {"name": family.name, "documentation": family.documentation, "type": family.type,
         "samples": [[sample.name, sample.labels, sample.value] for sample in family.samples]}
        for family in REGISTRY.collect()
        if family.name.startswith("pumpstream_bridge")
    ]  # fmt: skip
