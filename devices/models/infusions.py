"""Infusion sessions (the original's "Infusion") and the progress history behind the chart."""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from devices.states import ACTIVE_SESSION_STATUSES, ReadBack, SessionStatus
from protocol.limits import RATE_DECIMALS

if TYPE_CHECKING:
    from devices.models.pumps import Device


def new_infusion_id() -> str:
    """A server infusion id, short enough for a pump's screen."""
    return f"inf_{uuid.uuid4().hex[:16]}"


RATE_HELP = "The MQTT contract's unit; clinical pages show mL/h (× 60)."


class InfusionSession(models.Model):
    """One ordered infusion on one pump, from the order to its end."""

    infusion_id = models.CharField(max_length=64, unique=True, default=new_infusion_id)
    device = models.ForeignKey("devices.Device", on_delete=models.PROTECT, related_name="sessions")
    status = models.CharField(max_length=12, choices=SessionStatus.choices, default=SessionStatus.PENDING)
    status_reason = models.CharField(max_length=200, blank=True)
    # The order as programmed (units of the wire: mL/min, mL, min).
    flow_rate_ml_min = models.FloatField("rate (mL/min)", help_text=RATE_HELP)
    planned_volume_ml = models.FloatField("planned volume (mL)")
    planned_time_min = models.FloatField()
    bolus_enabled = models.BooleanField(default=False)
    bolus_volume_ml = models.FloatField("bolus volume (mL)", default=0.0)
    drug = models.CharField(max_length=100, blank=True)
    # Patient details, optional; never logged.
    patient_skipped = models.BooleanField(default=False)
    patient_name = models.CharField(max_length=200, blank=True)
    patient_age = models.PositiveSmallIntegerField(null=True, blank=True)
    patient_weight_kg = models.FloatField(null=True, blank=True)
    patient_bed = models.CharField(max_length=32, blank=True)
    patient_allergies = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The ward it was given in: its pump's when it was ordered, and while it is on the pump (pending, running, paused)
    # its pump's at each move of its status, so one that ends after its pump moved with its patient is the new ward's.
    # Its record (patient, order, events, history) is that ward's members' to read once it ended, wherever the pump
    # went since (`selectors.sessions_visible_to`); an active one is its pump's ward's. None: staff only (its pump had
    # no ward, or its ward was deleted).
    ward = models.ForeignKey("devices.Ward", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What the pump reported back, and what it is doing.
    reported_parameters = models.JSONField(null=True, blank=True)
    read_back = models.CharField(
        max_length=12, choices=ReadBack.choices, blank=True, help_text="Confirmed parameters against the order."
    )
    confirmation = models.JSONField(null=True, blank=True)
    completion = models.JSONField(null=True, blank=True)
    # How the server came to believe the pump runs it: "confirmation", or the evidence that showed it.
    running_evidence = models.CharField(max_length=64, blank=True)
    # An answer to its START naming no infusion ("received_start_command", "rejected") not applied because it may be an
    # earlier order's, though it may be this one's (`bare_answers`): the waiting window says so; "" once its own
    # receipt is applied.
    answer_in_doubt = models.CharField(max_length=32, blank=True)
    # This run's wait for a confirmation: since when it runs on the pump's evidence with none, first or again after
    # its end (a restart voids what an earlier confirmation verified); None once one was read back for this run.
    # `unverified_raised`: its grace ran out and `parameters_unverified` was raised for this run (not again in it).
    unconfirmed_since = models.DateTimeField(null=True, blank=True)
    unverified_raised = models.BooleanField(default=False)
    # The running progress rate (mL/min) that made this run's read-back a mismatch, the one its latest
    # `parameter_mismatch` names, and when it was received; None when the mismatch came from a confirmation (or there
    # is none). The panels show it as what the pump runs, never an older confirmation; a restart's new run clears it.
    mismatch_flow_rate_ml_min = models.FloatField(null=True, blank=True)
    mismatch_seen_at = models.DateTimeField(null=True, blank=True)
    # When the pump's running rate came back within tolerance of the order after that mismatch rate (the first such
    # report; None while it runs off the order, or never came back): the panels say it now reports the order's rate,
    # the alarm stays until a person resolves it.
    rate_matched_at = models.DateTimeField(null=True, blank=True)
    # The rate (mL/min) the pump said it received with the order (`received_start_command`'s `currentInfusion`),
    # before anyone accepted it at the pump: what it holds, not a confirmation of what it runs; None if it said none.
    received_flow_rate_ml_min = models.FloatField(null=True, blank=True)
    # The other parameters it said it received with the order, by the contract's names (`plannedVolumeMl`,
    # `plannedTimeMin`, `bolusEnabled`, `bolusVolumeMl`; the original firmware's `volume`, `time`, `bolusVolume`): what
    # it holds, not a confirmation; None if it said none (`devices/services/readback_received.py`).
    received_parameters = models.JSONField(null=True, blank=True)
    # The window over which the delivered volume's growth is compared with rate x time (`devices/services/delivery.py`):
    # the running report it starts at (its receive time, its delivered volume, the pump's own `elapsedTimeMin`) and the
    # highest `flowRate` the pump reported since; None until this run's first running report with a delivered volume.
    delivery_window_at = models.DateTimeField(null=True, blank=True)
    delivery_window_ml = models.FloatField(null=True, blank=True)
    delivery_window_elapsed_min = models.FloatField(null=True, blank=True)
    delivery_window_rate_ml_min = models.FloatField(null=True, blank=True)
    # What was delivered in all (`devices/services/delivery.py`): a run of the delivered count ends when the count goes
    # back (a pump rebooted, re-primed or reset counting from 0 again); `delivered_before_run_ml` sums the highest
    # count of each run before this one, `delivered_run_peak_ml` is this run's highest (None before any count).
    delivered_before_run_ml = models.FloatField(default=0.0)
    delivered_run_peak_ml = models.FloatField(null=True, blank=True)
    # What raised this session's latest `delivery_divergence` (the delivered volume against the order), shown beside
    # the read-back; None if nothing did.
    delivery_divergence = models.JSONField(null=True, blank=True)
    # The progress it received lives once, on the pump (`Device.latest_progress`): see `progress_on`.
    last_sampled_at = models.DateTimeField(null=True, blank=True)
    # Every timestamp, in server receive time.
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="START reached the pump.")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # The pump's `latest_progress_at` when this session was created (moved on when it leaves pending or runs
    # again after its end: it holds only newer reports) and when it ended: which progress is this
    # session's is decided by the order the pump's row saw them in, not by comparing a receive time stamped by
    # the bridge with a moment stamped by another process (a progress received before a cancel on another
    # process but applied after it is the pump's, not the cancelled session's: live subscribers got it so).
    prior_progress_at = models.DateTimeField(null=True, blank=True)
    final_progress_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device"],
                condition=Q(status__in=ACTIVE_SESSION_STATUSES),
                name="one_active_session_per_device",
            ),
            models.CheckConstraint(condition=Q(flow_rate_ml_min__gt=0), name="session_rate_positive"),
            models.CheckConstraint(condition=Q(planned_volume_ml__gt=0), name="session_volume_positive"),
        ]
        indexes = [models.Index(fields=["device", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.infusion_id} on {self.device_id} ({self.status})"

    def progress_on(self, device: "Device") -> dict | None:
        """The pump's latest progress if it arrived while this session was on (from its creation to its end), else None.

        A pump reports one progress at a time, so its latest report is stored once, on the pump; this session's
        view of it is that report when it was applied after the session left pending (and, once ended, not after
        its end): newer than `prior_progress_at`, not newer than its progress at the end.
        A pending order has none: progress showing the pump infusing it makes it run first (evidence); any other
        progress while it waits is the pump's own infusion (or another one's), never this order's.
        """
        if self.status == SessionStatus.PENDING:
            return None
        at = device.latest_progress_at
        if at is None or (self.prior_progress_at is not None and at <= self.prior_progress_at):
            return None
        if self.ended_at is not None and (self.final_progress_at is None or at > self.final_progress_at):
            return None
        return device.latest_progress

    def progress(self) -> dict | None:
        """`progress_on` this session's own pump (reads the pump when it is not loaded)."""
        return self.progress_on(self.device)

    def progress_after_its_end(self, device: "Device") -> bool:
        """Whether the pump's latest progress was applied after this (ended) session's last report: the pump's own
        since (infusing without an order), shown under no infusion by the snapshot and the monitor alike."""
        at = device.latest_progress_at
        return at is not None and (self.final_progress_at is None or at > self.final_progress_at)

    def progress_at_on(self, device: "Device") -> datetime | None:
        """When the progress `progress_on` returns was received, or None."""
        return device.latest_progress_at if self.progress_on(device) is not None else None

    @property
    def delivered_in_all_ml(self) -> float | None:
        """The volume delivered in all: the highest count of each run of the delivered count, summed (None before any
        count). Correct across reboots and counts reset to 0: what was delivered stays delivered."""
        if self.delivered_run_peak_ml is None:
            return None
        return self.delivered_before_run_ml + self.delivered_run_peak_ml

    @property
    def order(self) -> dict:
        """The order as sent in START_INFUSION."""
        return {
            "flowRateMlMin": round(self.flow_rate_ml_min, RATE_DECIMALS),
            "plannedVolumeMl": self.planned_volume_ml,
            "plannedTimeMin": self.planned_time_min,
            "bolus": {"enabled": self.bolus_enabled, "volumeMl": self.bolus_volume_ml if self.bolus_enabled else 0},
        }


class ProgressSample(models.Model):
    """One point of a session's delivered volume over time (sampled, plus every state change)."""

    session = models.ForeignKey(InfusionSession, on_delete=models.CASCADE, related_name="samples")
    recorded_at = models.DateTimeField(default=timezone.now)
    delivered_volume_ml = models.FloatField("delivered volume (mL)", null=True)
    volume_remaining_ml = models.FloatField("volume remaining (mL)", null=True)
    time_remaining_min = models.FloatField(null=True)
    progress_percent = models.FloatField(null=True)
    flow_rate_ml_min = models.FloatField("rate (mL/min)", null=True, help_text=RATE_HELP)
    status = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["recorded_at"]
        indexes = [models.Index(fields=["session", "recorded_at"]), models.Index(fields=["recorded_at"])]
