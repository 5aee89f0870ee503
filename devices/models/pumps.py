"""Wards and pumps."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from devices.signals import pump_wards_written
from devices.states import Connectivity, Presence, PumpState

DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
validate_device_id = RegexValidator(DEVICE_ID_PATTERN, "A device id is 1-64 characters of A-Z a-z 0-9 _ -.")


class Ward(models.Model):
    """A ward: its members see (and, with permission, command) its pumps."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="wards", blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


WARD_FIELDS = frozenset({"ward", "ward_id"})  # a pump's ward, by its field's name or its column's


class DeviceQuerySet(models.QuerySet):
    """Pumps. A queryset's write of their wards sends no `pre_save`, so the guard that refuses a pump in use saved off
    every station (`watchers.pump_move_guard`) never saw it (review 39, finding 6): each such write here tells that
    guard what it moved (`pump_wards_written`), inside its transaction, and a refusal takes the write back. Writes of
    other columns (the bridge's last-heard times, a pump's `seq`) go straight through, nothing locked for them.

    It is the pumps' base manager too (`Device.Meta.base_manager_name`), so it filters no rows: Django's own roads
    write through that one, not `objects`, and come here as well: a ward's `devices.add(...)` and `devices.set(...)`
    (review 40, finding 1: an infusing pump added to a ward no one watches went through unrefused) and a ward's
    deletion nulling its pumps' ward (`SET_NULL`, after the ward's deletion guard: `deletion_guards`)."""

    def update(self, **kwargs: Any) -> int:
        """Django's; writing the ward (`bulk_update` of it comes here too), only to the rows locked before it."""
        if not WARD_FIELDS & kwargs.keys():
            return super().update(**kwargs)
        with self._wards_written(self.values("pk")) as locked:
            return models.QuerySet.update(locked, **kwargs)

    def bulk_update(self, objs: Iterable["Device"], fields: Iterable[str], batch_size: int | None = None) -> int:
        """Django's (its `update()`s are the ones above); writing the ward, in a savepoint: Django's own block has none,
        so a refusal would leave a caller's transaction unusable rather than take back only this write."""
        fields = list(fields)
        if not WARD_FIELDS & set(fields):
            return super().bulk_update(objs, fields, batch_size=batch_size)
        with transaction.atomic(using=self.db):
            return super().bulk_update(objs, fields, batch_size=batch_size)

    def bulk_create(self, objs: Iterable["Device"], batch_size: int | None = None, ignore_conflicts: bool = False,
                    update_conflicts: bool = False, update_fields: list[str] | None = None,
                    unique_fields: list[str] | None = None) -> list["Device"]:  # fmt: skip
        """Django's; an upsert writing the ward of pumps already there (found by their device id or pk, a pump's only
        unique columns) tells what it moved."""
        objs = list(objs)
        options = {"batch_size": batch_size, "ignore_conflicts": ignore_conflicts,
                   "update_conflicts": update_conflicts, "update_fields": update_fields,
                   "unique_fields": unique_fields}  # fmt: skip
        if not update_conflicts or not WARD_FIELDS & set(update_fields or ()):
            return super().bulk_create(objs, **options)
        there = Q(device_id__in=[obj.device_id for obj in objs]) | Q(pk__in=[obj.pk for obj in objs if obj.pk])
        with self._wards_written(self.filter(there).values("pk")):
            return super().bulk_create(objs, **options)

    @contextmanager
    def _wards_written(self, pumps: models.QuerySet) -> Iterator[models.QuerySet]:
        """These pumps' rows locked (in `Device`'s lock order) for the block's write, then `pump_wards_written` of
        each whose ward it changed, in one transaction: refused, the write is taken back."""
        stored = self.model._base_manager.db_manager(self.db)
        with transaction.atomic(using=self.db):
            before = list(stored.select_for_update().filter(pk__in=pumps).order_by("pk"))
            yield self.filter(pk__in=[pump.pk for pump in before])
            after = dict(stored.filter(pk__in=[pump.pk for pump in before]).values_list("pk", "ward_id"))
            moves = [(pump, after[pump.pk]) for pump in before if after.get(pump.pk, pump.ward_id) != pump.ward_id]
            if moves:
                pump_wards_written.send(sender=self.model, moves=moves)


class Device(models.Model):
    """An infusion pump as the server knows it; connectivity is derived when read.

    Lock order: a transaction that locks several pumps' rows locks them in pk order, the order of the hot paths (the
    bridge's batches, `progress_lock.progress_pumps_lock`; the outbox and Daphne's command keeper,
    `publication._devices_lock`). Every other road that locks several takes the same order (a queryset's write of
    their wards, `DeviceQuerySet`; a ward's deletion, `registration.ward_delete` and `deletion_guards`), so no two of
    them wait for each other in a cycle: in device id order, a shell's move of two pumps and the outbox's handover
    of their commands deadlocked, PostgreSQL aborting one of them (review 40, finding 3).

    Pumps before wards, wards in pk order too: a move locks its pumps, then its destination ward (`registration.
    pump_move_refuse_if_unwatched`); the bridge's alarm its pump, then a share of its ward (`silences._ward_hold`);
    a ward's deletion the ward's pumps, then the ward (`registration.ward_deletion_lock`), refused (`ward_changed`)
    if a pump came into the ward in between. The ward first, `ward.devices.set(...)` or an alarm on one of its pumps
    and that ward's deletion deadlocked, PostgreSQL aborting one of them (review 41, F2). A road that locks a ward
    and then a pump would close that cycle again.
    """

    objects = DeviceQuerySet.as_manager()  # filters no rows: the base manager too (`Meta.base_manager_name`)

    device_id = models.CharField(max_length=64, unique=True, validators=[validate_device_id])
    name = models.CharField(max_length=100, blank=True)
    ward = models.ForeignKey(Ward, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices")
    bed = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=64, blank=True)
    serial_number = models.CharField(max_length=64, blank=True)
    firmware_version = models.CharField(max_length=64, blank=True)
    max_volume_ml = models.FloatField("maximum volume (mL)", default=1000.0, validators=[MinValueValidator(0.1)])
    max_rate_ml_min = models.FloatField(
        "maximum rate (mL/min)", default=20.0, validators=[MinValueValidator(0.001)],
        help_text="In the MQTT contract's unit; the admin form and the clinical pages show it in mL/h (× 60).",
    )  # fmt: skip
    max_bolus_ml = models.FloatField(
        "maximum bolus (mL)", null=True, blank=True, validators=[MinValueValidator(0.1)],
        help_text="The pump's largest bolus (blank: no limit of its own; an order's bolus is at most half its volume).",
    )  # fmt: skip
    has_presence = models.BooleanField(
        default=False, help_text="Announces itself with a retained online status and a Last Will."
    )
    presence = models.CharField(max_length=8, choices=Presence.choices, default=Presence.UNKNOWN)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    reported_status = models.CharField(max_length=32, blank=True, help_text="The last status the pump reported.")
    pump_state = models.CharField(max_length=8, choices=PumpState.choices, default=PumpState.IDLE)
    battery_level = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])
    latest_progress = models.JSONField(null=True, blank=True)
    latest_progress_at = models.DateTimeField(null=True, blank=True)
    # What tells a restart (protocol v1.1): the last bootId heard, or the original firmware's uptime (ms).
    boot_id = models.CharField(max_length=64, blank=True)
    last_uptime_ms = models.FloatField(null=True, blank=True)
    last_uptime_at = models.DateTimeField(null=True, blank=True, help_text="When last_uptime_ms was received.")
    booted_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the pump last booted, told at its last restart on the server's clock (the report's receive "
        "time less the uptime it told, else when the restart was told): commands published before it were the run "
        "before's.",
    )  # fmt: skip
    seq_applied = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="The pump's own `seq` last applied in order under boot_id: a live message of that boot numbered "
        "below it came late and rewinds nothing (`devices/services/late_reports.py`).",
    )  # fmt: skip
    event_seq = models.PositiveBigIntegerField(default=0, help_text="The server's per-pump change counter.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        base_manager_name = "objects"  # Django's own writes of pumps' wards guarded too (`DeviceQuerySet`)
        ordering = ["device_id"]
        permissions = [
            ("command_device", "Can start, pause, resume and stop infusions"),
            ("acknowledge_alarm", "Can acknowledge alarms"),
            ("resolve_alarm", "Can resolve a stuck alarm with a reason"),
        ]

    def __str__(self) -> str:
        return self.device_id

    def connectivity(self, *, now: datetime | None = None, heartbeat_timeout_s: float | None = None) -> str:
        """The contract's connectivity, derived from presence and the last receive time."""
        if self.last_seen_at is None:
            return Connectivity.UNKNOWN
        if self.presence == Presence.OFFLINE:
            return Connectivity.OFFLINE
        if self.has_presence and self.presence == Presence.ONLINE:
            return Connectivity.ONLINE
        timeout = heartbeat_timeout_s or settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]
        if (now or timezone.now()) - self.last_seen_at > timedelta(seconds=timeout):
            return Connectivity.STALE
        return Connectivity.ONLINE

    @property
    def active_session(self):
        """The pending, running or paused session (the database allows one at most)."""
        from devices.models.infusions import InfusionSession
        from devices.states import ACTIVE_SESSION_STATUSES

        return InfusionSession.objects.filter(device=self, status__in=ACTIVE_SESSION_STATUSES).first()


class RemovedPump(models.Model):
    """A device id whose pump was deleted, and the last `seq` that pump took (its `device:removed`).

    A pump registered again under that id goes on from there (`pump_register`): `seq` never restarts for a device
    id, so a client that holds the old pump's `seq` (a ward overview's card, a client away meanwhile) never takes
    the new pump's changes for ones it has already seen.
    """

    device_id = models.CharField(max_length=64, unique=True)
    last_seq = models.PositiveBigIntegerField()
    removed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.device_id} (removed at seq {self.last_seq})"
