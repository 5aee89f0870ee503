"""`settings.PUMPSTREAM` from the environment: the project's own timeouts, bounds, budgets and escalation tiers.

In seconds unless named otherwise; tests shorten them through the environment. Every variable is documented in
`.env.example`.
"""

import environ


def pumpstream_settings_from_env(env: environ.Env) -> dict:
    """Every entry of `settings.PUMPSTREAM`, read now."""
    return {**_waits(env), **_bridge_bounds(env), **_daphne(env), **_alarm_timing(env)}


def _waits(env: environ.Env) -> dict:
    """How long a pump, a command and a bridge are waited for."""
    return {
        "HEARTBEAT_TIMEOUT_S": env.float("HEARTBEAT_TIMEOUT_S", default=10.0),
        "CONFIRMATION_TIMEOUT_S": env.float("CONFIRMATION_TIMEOUT_S", default=30.0),
        # An order running on a pump's evidence (it reported infusing before confirming) waits this long for the
        # confirmation's parameters before `parameters_unverified` is raised (the original firmware's bolus report
        # comes 20 ms before its confirmation: an alarm raised and cleared at every such start, review 12).
        "EVIDENCE_CONFIRMATION_GRACE_S": env.float("EVIDENCE_CONFIRMATION_GRACE_S", default=5.0),
        "COMMAND_EXPIRY_S": env.float("COMMAND_EXPIRY_S", default=30.0),  # PAUSE, RESUME, STOP end within it
        "COMMAND_ACK_TIMEOUT_S": env.float("COMMAND_ACK_TIMEOUT_S", default=10.0),
        "BRIDGE_HEARTBEAT_S": env.float("BRIDGE_HEARTBEAT_S", default=2.0),
        # The most a bridge batch (one transaction) waits for more messages after its first; it waits as long
        # as the previous commit took, up to this. 0 (default): never wait, a batch is what queued during the
        # last commit (lowest latency); e.g. 20 saves about a third of the bridge's CPU for more latency.
        "BRIDGE_BATCH_WINDOW_MS": env.float("BRIDGE_BATCH_WINDOW_MS", default=0.0),
        "BRIDGE_STALE_AFTER_S": env.float("BRIDGE_STALE_AFTER_S", default=10.0),
        "RECONNECT_GRACE_S": env.float("RECONNECT_GRACE_S", default=15.0),
    }


def _bridge_bounds(env: environ.Env) -> dict:
    """Bridges sharing the pumps, the history kept, and what one pump may cost the bridge (floods, budgets,
    active alarms)."""
    return {
        # Bridges sharing the pumps (PostgreSQL only; realtime/bridge/slots.py): K slots, each one MQTT session
        # owned through a lease of BRIDGE_LEASE_S on the database's clock, by BRIDGE_PROCESSES processes
        # (`run_mqtt_bridge --index i`). 1 slot: one bridge, as ever.
        "BRIDGE_SLOTS": env.int("BRIDGE_SLOTS", default=1),
        "BRIDGE_PROCESSES": env.int("BRIDGE_PROCESSES", default=1),
        "BRIDGE_LEASE_S": env.float("BRIDGE_LEASE_S", default=3.0),
        "PROGRESS_SAMPLE_INTERVAL_S": env.float("PROGRESS_SAMPLE_INTERVAL_S", default=5.0),
        "HISTORY_RETENTION_DAYS": env.int("HISTORY_RETENTION_DAYS", default=90),
        "DEAD_LETTERS_PER_SOURCE": env.int("DEAD_LETTERS_PER_SOURCE", default=500),
        "MAX_PAYLOAD_BYTES": env.int("MAX_PAYLOAD_BYTES", default=16 * 1024),
        # Per-pump flood limit on routine progress (normal: about 1/s); the excess is shed and counted. 0: off.
        "PROGRESS_FLOOD_PER_S": env.float("PROGRESS_FLOOD_PER_S", default=10.0),
        "PROGRESS_FLOOD_BURST": env.float("PROGRESS_FLOOD_BURST", default=100.0),
        # A redelivered message (after a crash) is tried this many times, one by one, then dead-lettered.
        "BRIDGE_REDELIVERY_TRIES": env.int("BRIDGE_REDELIVERY_TRIES", default=3),
        # Per-pump budgets for every other topic (realtime/bridge/budgets.py): alarms (the error topic) and
        # reports (the rest), each a token bucket; the excess is shed and summed up as one high alarm_flood.
        # A pump may hold at most ALARM_ACTIVE_MAX distinct active alarms. 0 turns a bound off.
        "ALARM_BUDGET_PER_S": env.float("ALARM_BUDGET_PER_S", default=1.0),
        "ALARM_BUDGET_BURST": env.float("ALARM_BUDGET_BURST", default=5.0),
        "REPORT_BUDGET_PER_S": env.float("REPORT_BUDGET_PER_S", default=5.0),
        # A pump's backlog after an outage (its own, the broker's or the bridge's) arrives at once and is no flood: the
        # burst holds an hour of a pump's reports at ten a minute; a flood's excess beyond it is shed and summed up.
        "REPORT_BUDGET_BURST": env.float("REPORT_BUDGET_BURST", default=600.0),
        # The same reports' payload bytes (an alarm never pays bytes): a pump padding its reports (up to
        # MAX_PAYLOAD_BYTES each) at the report budget stored ~1-1.7 GB a day. The firmwares' largest report is 352
        # bytes (a modern status; the original's 253): an hour of them at ten a minute is 211 KB, within the burst,
        # and a rate 17 times what ten a minute of them cost; a padding pump gets at most ~88 MB a day through.
        "REPORT_BYTES_PER_S": env.float("REPORT_BYTES_PER_S", default=1024.0),
        "REPORT_BYTES_BURST": env.float("REPORT_BYTES_BURST", default=1024.0 * 1024),
        "ALARM_ACTIVE_MAX": env.int("ALARM_ACTIVE_MAX", default=20),
        # An acknowledged alarm_flood alerts again for an alarm type shed beyond the 256 types it remembers at most once
        # in this interval; news within it waits for its end: a broken pump's ever new junk types cannot re-alert it
        # continuously, and a real alarm shed among them is signalled within the interval (docs/clinical-rules.md).
        "ALARM_FLOOD_NEWS_INTERVAL_S": env.float("ALARM_FLOOD_NEWS_INTERVAL_S", default=60.0),
    }


def _daphne(env: environ.Env) -> dict:
    """Each Daphne's publisher, rights re-check and sockets."""
    return {
        # Each Daphne's publisher reads the change log when woken after a commit, and at least this often
        # (a lost wake, commits of processes that cannot wake it); the log keeps changes CHANGE_LOG_KEEP_S.
        "PUBLISHER_POLL_S": env.float("PUBLISHER_POLL_S", default=1.0),
        # On SQLite the publisher reads the log on its event loop with a plain read-only connection (no thread
        # hop, no ORM: devices/logreader.py); false reads through the ORM on a thread as other engines do.
        "PUBLISHER_READ_ON_LOOP": env.bool("PUBLISHER_READ_ON_LOOP", default=True),
        "CHANGE_LOG_KEEP_S": env.float("CHANGE_LOG_KEEP_S", default=300.0),
        # How often each Daphne process re-reads the rights of its connected users and service accounts.
        "RIGHTS_RECHECK_S": env.float("RIGHTS_RECHECK_S", default=2.0),
        # Sockets (Socket.IO and Channels together) one user or service account may hold open per Daphne. 0: no cap.
        "SOCKETS_PER_PRINCIPAL": env.int("SOCKETS_PER_PRINCIPAL", default=20),
        # A connection (either WebSocket road, or Socket.IO's long polling) whose client does not read is closed once
        # more than this many bytes were sent to it beyond what its network took (`realtime/slow_readers.py`); it
        # reconnects and takes a fresh snapshot. The largest burst a page gets at once is a 50-pump subscription's
        # snapshots, about 160 KB (about 3 KB a pump), a padded worst case about 1 MB; a ward's live traffic is about
        # 15-25 KB/s. 20 sockets of one account then hold at most about 21 MB. 0: no bound.
        "SOCKET_UNSENT_MAX_BYTES": env.int("SOCKET_UNSENT_MAX_BYTES", default=1024 * 1024),
    }


def _alarm_timing(env: environ.Env) -> dict:
    """Reminders, ward silences, the ward feed's tick and escalation of unacknowledged alarms."""
    return {
        # An acknowledged alarm still active this long after its acknowledgement alerts again (contract v1.1).
        "ALARM_REMINDER_HIGH_S": env.float("ALARM_REMINDER_HIGH_S", default=300.0),
        "ALARM_REMINDER_MEDIUM_S": env.float("ALARM_REMINDER_MEDIUM_S", default=900.0),
        # A ward's silence of its alarm sound (silence:ward, IEC 60601-1-8 AUDIO PAUSED): how long when the station
        # asks for no length, and the most it may last; a new high alarm always sounds through it.
        "WARD_SILENCE_DEFAULT_S": env.float("WARD_SILENCE_DEFAULT_S", default=120.0),
        "WARD_SILENCE_MAX_S": env.float("WARD_SILENCE_MAX_S", default=120.0),
        # Each Daphne's ward feeds send the coalesced `ward:summary` and re-read the wards' silences this often.
        "WARD_FEED_TICK_S": env.float("WARD_FEED_TICK_S", default=1.0),
        # Escalation of an alarm nobody acknowledged (docs/clinical-rules.md): per priority, the delays after it
        # alerted at which it reaches tier 1, 2, ... (comma-separated seconds; empty: never escalates).
        "ESCALATION_HIGH_S": env.list("ESCALATION_HIGH_S", cast=float, default=[60.0, 120.0]),
        "ESCALATION_MEDIUM_S": env.list("ESCALATION_MEDIUM_S", cast=float, default=[300.0]),
        "ESCALATION_LOW_S": env.list("ESCALATION_LOW_S", cast=float, default=[]),
        # Per tier (1, 2, ...; the last entry serves higher tiers): the Django group whose members of the ward get
        # `alarm:escalated` on their sockets, and the webhook (nurse call, pager) it is posted to ("" for none).
        "ESCALATION_TIER_GROUPS": env.list("ESCALATION_TIER_GROUPS", default=["charge_nurse", "ward_manager"]),
        "ESCALATION_TIER_WEBHOOKS": env.list("ESCALATION_TIER_WEBHOOKS", default=[]),
        "ESCALATION_WEBHOOK_TRIES": env.int("ESCALATION_WEBHOOK_TRIES", default=5),
        "ESCALATION_WEBHOOK_RETRY_S": env.float("ESCALATION_WEBHOOK_RETRY_S", default=2.0),  # doubled per try, max 60
        "ESCALATION_WEBHOOK_TIMEOUT_S": env.float("ESCALATION_WEBHOOK_TIMEOUT_S", default=5.0),
    }
