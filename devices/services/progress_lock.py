"""The pumps a batch of progress is about, locked and read with what their reports need (`progress.py` applies them).

One statement reads each pump (every column but its latest progress), its ward and its active session's columns that
progress needs; one more its watched server alarms. On PostgreSQL the pumps are locked first by a statement of their
own (`progress_pumps_lock`).
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connections

from devices.models import Alarm, Device, InfusionSession, Ward
from devices.services.delivery import DIVERGENCE_KEY
from devices.services.sql import HotCursor, hot_cursor, model_from_columns, models_select, select_in_sql
from devices.states import ACTIVE_SESSION_STATUSES, UNORDERED_ALARMS, AlarmState

SERVER_ALARMS_WATCHED = ("communication_lost", DIVERGENCE_KEY, *UNORDERED_ALARMS)
DELIVERY_WINDOW_FIELDS = ("delivery_window_at", "delivery_window_ml", "delivery_window_elapsed_min",
                          "delivery_window_rate_ml_min")  # fmt: skip
DELIVERED_FIELDS = ("delivered_before_run_ml", "delivered_run_peak_ml")  # the volume delivered in all
# What the bulk path loads: every column of the pump but its latest progress (replaced, never read: no
# JSON to decode), and of the session what progress needs.
DEVICE_LOCKED_FIELDS = tuple(field.name for field in Device._meta.concrete_fields if field.name != "latest_progress")
SESSION_LOCKED_FIELDS = ("id", "infusion_id", "device", "status", "flow_rate_ml_min", "planned_volume_ml",
                         "bolus_enabled", "bolus_volume_ml", "read_back", "mismatch_flow_rate_ml_min",
                         "rate_matched_at", *DELIVERY_WINDOW_FIELDS, *DELIVERED_FIELDS, "last_sampled_at",
                         "status_changed_at")  # fmt: skip
WARD_FIELDS = ("id", "code", "name")
WARD_READ_AS = ("_locked_ward_id", "_locked_ward_code", "_locked_ward_name")  # the pump row's ward columns
SESSION_READ_AS = tuple(f"_locked_session_{name}" for name in SESSION_LOCKED_FIELDS)  # and its session's
JOINED_READ_AS = (*WARD_READ_AS, *SESSION_READ_AS)
ACTIVE = tuple(status.value for status in ACTIVE_SESSION_STATUSES)


@dataclass
class ProgressPump:
    """What one pump's reports need: its locked row, its active session and its active watched alarms (and the
    sessions whose `delivery_divergence` is active: `divergent`)."""

    device: Device
    session: InfusionSession | None
    alarms: set[tuple[str, str]]
    divergent: set[int]


def progress_pumps_lock(*, device_ids: Sequence[str], cursor: HotCursor | None = None) -> dict[str, ProgressPump]:
    """Lock the registered pumps among `device_ids` (in `Device`'s lock order) with their wards, sessions and watched
    alarms.

    Runs on every bridge batch, its SQL written once per number of keys: the pumps with their wards and active
    sessions (`_pumps_read_sql`), then their watched alarms (`select_in_sql`). On PostgreSQL the pumps are locked
    by a statement of their own first (`_pumps_lock_sql`): a statement that waits for a row lock gets the locked
    row as the lock holder committed it, but the rows it joins as they were when it began, so a session ended by a
    person while the batch waited came back active (review 9: the ended record resumed by the next report). SQLite
    needs no such statement: the bridge's transaction (IMMEDIATE) is the only writer from its first statement.
    `cursor`: the caller's, shared by its statements (`hot_cursor`).
    """
    keys = sorted(set(device_ids))
    if not keys:
        return {}
    with hot_cursor(cursor) as cursor:
        devices = _pumps_read(keys, cursor)
        if not devices:  # none registered (a batch of unknown pumps' reports): nothing more to read of them
            return {}
        sessions = _joined_rows_split(devices, cursor.wrapper)
        alarms, divergent = _alarms_watched([device.pk for device in devices], cursor)
    return {device.device_id: ProgressPump(device, sessions.get(device.pk), alarms[device.pk], divergent[device.pk])
            for device in devices}  # fmt: skip


def _pumps_read(keys: list[str], cursor: HotCursor) -> list[Device]:
    """The pumps of `keys` in pk order (locked first on PostgreSQL), with their wards' and active sessions' columns."""
    locked = None
    if cursor.wrapper.features.has_select_for_update:
        cursor.execute(_pumps_lock_sql(len(keys)), keys)
        locked = {row[0] for row in cursor.fetchall()}
    sql = _pumps_read_sql(len(keys))
    devices = models_select(Device, DEVICE_LOCKED_FIELDS, sql, [*ACTIVE, *keys], extra=JOINED_READ_AS, cursor=cursor)
    if locked is not None:  # a pump registered while the lock statement waited is not locked: not ours, as if unknown
        devices = [device for device in devices if device.pk in locked]
    return devices


def _joined_rows_split(devices: list[Device], wrapper) -> dict[int, InfusionSession]:
    """Each pump's ward and active session, read with it: the ward cached on the pump, the sessions by pump pk."""
    session_of = {}
    for device in devices:
        ward = [device.__dict__.pop(name) for name in WARD_READ_AS]
        if ward[0] is not None:
            Device.ward.field.set_cached_value(device, Ward.from_db(device._state.db, WARD_FIELDS, ward))
        session = [device.__dict__.pop(name) for name in SESSION_READ_AS]
        if session[0] is not None:
            session_of[device.pk] = model_from_columns(InfusionSession, SESSION_LOCKED_FIELDS, session, wrapper)
    return session_of


def _alarms_watched(pks: list[int], cursor: HotCursor) -> tuple[dict[int, set[tuple[str, str]]], dict[int, set[int]]]:
    """Per pump, its active watched server alarms (type, error code) and the sessions of its `delivery_divergence`."""
    alarms: dict[int, set[tuple[str, str]]] = defaultdict(set)
    divergent: dict[int, set[int]] = defaultdict(set)
    cursor.execute(select_in_sql(Alarm, ("device", "type", "error_code", "session"), (("device", len(pks)),
                                 ("type", len(SERVER_ALARMS_WATCHED))), equal=("state",)),
                   [*sorted(pks), *SERVER_ALARMS_WATCHED, AlarmState.ACTIVE.value])  # fmt: skip
    for device_pk, alarm_type, error_code, session_pk in cursor.fetchall():
        alarms[device_pk].add((alarm_type, error_code))
        if alarm_type == DIVERGENCE_KEY:
            divergent[device_pk].add(session_pk)
    return alarms, divergent


@lru_cache(maxsize=1024)
def _pumps_lock_sql(count: int) -> str:
    """`SELECT id FROM pump WHERE device_id IN (...) ORDER BY id FOR UPDATE`: the pumps locked in `Device`'s lock
    order (pk)."""
    quote, device = connections[DEFAULT_DB_ALIAS].ops.quote_name, Device._meta
    return (f"SELECT {quote(device.pk.column)} FROM {quote(device.db_table)} WHERE "
            f"{quote(device.get_field('device_id').column)} IN ({', '.join(['%s'] * count)}) "
            f"ORDER BY {quote(device.pk.column)} FOR UPDATE")  # fmt: skip


@lru_cache(maxsize=1024)
def _pumps_read_sql(count: int) -> str:
    """`SELECT pump (its locked fields), its ward, its active session FROM pump LEFT JOIN ward LEFT JOIN session
    (status IN the active ones) WHERE device_id IN (...) ORDER BY pump.id`: a row per pump (one active session per
    pump is a constraint), read after the lock (`progress_pumps_lock`). The LEFT JOIN of the watched alarms too was
    dearer than their own SELECT on SQLite (`bench/README.md`, 2026-12-05). Parameters: the active statuses, then
    the ids."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    device, ward, session = Device._meta, Ward._meta, InfusionSession._meta
    columns = [f"d.{quote(device.get_field(name).column)}" for name in DEVICE_LOCKED_FIELDS]
    columns += [f"w.{quote(ward.get_field(name).column)}" for name in WARD_FIELDS]
    columns += [f"s.{quote(session.get_field(name).column)}" for name in SESSION_LOCKED_FIELDS]
    return (f"SELECT {', '.join(columns)} FROM {quote(device.db_table)} d LEFT JOIN {quote(ward.db_table)} w "
            f"ON w.{quote(ward.pk.column)} = d.{quote(device.get_field('ward').column)} "
            f"LEFT JOIN {quote(session.db_table)} s ON s.{quote(session.get_field('device').column)} = "
            f"d.{quote(device.pk.column)} AND s.{quote(session.get_field('status').column)} IN "
            f"({', '.join(['%s'] * len(ACTIVE))}) "
            f"WHERE d.{quote(device.get_field('device_id').column)} IN ({', '.join(['%s'] * count)}) "
            f"ORDER BY d.{quote(device.pk.column)}")  # fmt: skip
