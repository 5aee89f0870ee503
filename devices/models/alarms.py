"""Alarms raised by pumps or by the server."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from devices.states import AlarmPriority, AlarmSource, AlarmState


class Alarm(models.Model):
    """One alarm condition; one active alarm per pump and (type, errorCode), repeats counted."""

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="alarms")
    session = models.ForeignKey(
        "devices.InfusionSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    type = models.CharField(max_length=64)
    error_code = models.CharField(max_length=64, blank=True, default="")
    priority = models.CharField(max_length=8, choices=AlarmPriority.choices)
    severity_reported = models.CharField(max_length=32, blank=True)
    message = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=AlarmSource.choices)
    state = models.CharField(max_length=8, choices=AlarmState.choices, default=AlarmState.ACTIVE)
    raised_at = models.DateTimeField(default=timezone.now)
    last_raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    count = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "type", "error_code"],
                condition=Q(state=AlarmState.ACTIVE),
                name="one_active_alarm_per_device_and_key",
            )
        ]
        indexes = [models.Index(fields=["device", "state"]), models.Index(fields=["raised_at"])]

    def __str__(self) -> str:
        return f"{self.type} on {self.device_id} ({self.priority}, {self.state})"
