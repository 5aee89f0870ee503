"""What the nurse station shares through the server: a ward's silence of its alarm sound, and escalations."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from devices.states import AlarmPriority, DeliveryState, SilenceEnd


class WardSilence(models.Model):
    """A ward's alarm sound paused on every screen of the ward, for a bounded time (IEC 60601-1-8 AUDIO PAUSED).

    Kept after it ends: who silenced, when, why, for how long, and how it ended are the audit.
    """

    ward = models.ForeignKey("devices.Ward", on_delete=models.CASCADE, related_name="silences")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(help_text="When the silence ends by itself.")
    reason = models.CharField(max_length=200, blank=True)
    priority = models.CharField(
        max_length=8, choices=AlarmPriority.choices, blank=True,
        help_text="The highest priority sounding when it started: a new alarm above it (or any high) breaks it.",
    )  # fmt: skip
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when it ended early, or (to `until`) once it ran out."
    )
    end_reason = models.CharField(max_length=8, choices=SilenceEnd.choices, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    broken_by = models.ForeignKey(
        "devices.Alarm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The alarm that sounded through the silence.",
    )  # fmt: skip

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["ward", "until"])]
        constraints = [
            models.UniqueConstraint(
                fields=["ward"], condition=Q(ended_at__isnull=True), name="one_open_silence_per_ward"
            ),  # fmt: skip
        ]

    def __str__(self) -> str:
        return f"silence of {self.ward_id} until {self.until:%H:%M:%S}"

    def is_active(self, now: datetime | None = None) -> bool:
        """Whether the ward's sound is silenced now."""
        return self.ended_at is None and (now or timezone.now()) < self.until


class EscalationDelivery(models.Model):
    """One escalation tier's webhook call for one alarm (to a nurse-call or paging system): the outbox row.

    Tried until the receiver answers 2xx, at most ESCALATION_WEBHOOK_TRIES times, then dead-lettered
    (which raises `escalation_failed` at the station); withdrawn unsent once the alarm is acknowledged or cleared.
    """

    alarm = models.ForeignKey("devices.Alarm", on_delete=models.CASCADE, related_name="escalations")
    tier = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=500)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    tries = models.PositiveSmallIntegerField(default=0)
    next_try_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_try_at"])]

    def __str__(self) -> str:
        return f"tier {self.tier} of alarm {self.alarm_id} ({self.state})"
