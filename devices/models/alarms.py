"""Alarms raised by pumps or by the server."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from devices.states import SERVER_ALARM_TYPES, AlarmPriority, AlarmResolveReason, AlarmSource, AlarmState

ACTIVE = Q(state=AlarmState.ACTIVE)


class Alarm(models.Model):
    """One alarm condition; one active alarm per pump and key (type key, errorCode, session), repeats counted."""

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="alarms")
    session = models.ForeignKey(
        "devices.InfusionSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    type = models.CharField(max_length=64, help_text="The type key: the type as sent, lower-cased, other chars _.")
    type_reported = models.CharField(max_length=200, blank=True, help_text="The type as the pump sent it.")
    wordings = models.JSONField(
        default=list, blank=True, help_text="The wordings of a pump's type shown since it was raised (news: a new one)."
    )
    error_code = models.CharField(max_length=64, blank=True, default="")
    priority = models.CharField(max_length=8, choices=AlarmPriority.choices)
    severity_reported = models.CharField(max_length=32, blank=True)
    message = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=AlarmSource.choices)
    state = models.CharField(max_length=8, choices=AlarmState.choices, default=AlarmState.ACTIVE)
    raised_at = models.DateTimeField(default=timezone.now)
    last_raised_at = models.DateTimeField(default=timezone.now)
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When it last alerted (raised or re-alerted).")
    alerts = models.PositiveIntegerField(default=1, help_text="How many times it alerted (1 + re-alerts).")
    cleared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_reason = models.CharField(max_length=32, choices=AlarmResolveReason.choices, blank=True)
    resolved_note = models.CharField(max_length=500, blank=True)
    count = models.PositiveIntegerField(default=1)
    escalation_level = models.PositiveSmallIntegerField(
        default=0, help_text="The escalation tiers reached while unacknowledged since it last alerted (0: none)."
    )
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "type", "error_code"],
                condition=ACTIVE & Q(session__isnull=True),
                name="one_active_alarm_per_device_and_key",
            ),
            models.UniqueConstraint(
                fields=["device", "type", "error_code", "session"],
                condition=ACTIVE & Q(session__isnull=False),
                name="one_active_alarm_per_device_key_and_session",
            ),
            models.CheckConstraint(  # a pump's alarm named like a server alarm is keyed `device_<key>`
                condition=~(Q(source=AlarmSource.DEVICE) & Q(type__in=sorted(SERVER_ALARM_TYPES))),
                name="device_alarm_key_not_a_server_type",
            ),
        ]
        indexes = [
            models.Index(fields=["device", "state"]),
            models.Index(fields=["raised_at"]),
            # the active ones by type: housekeeping asks after every commit whether any is due (a reminder, a tier,
            # a flood's counts) and must not read the cleared alarms, a history that only grows (bench/alarm_history)
            models.Index(fields=["type"], condition=ACTIVE, name="alarm_active_by_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} on {self.device_id} ({self.priority}, {self.state})"

    @property
    def type_shown(self) -> str:
        """The type as the pump sent it (server alarms: their own type)."""
        return self.type_reported or self.type
