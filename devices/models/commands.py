"""The command outbox: pages create rows, the bridge publishes them."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from devices.states import CommandKind, CommandState


class Command(models.Model):
    """One command to one pump and its life: queued → sent → delivered → done, or failed / expired."""

    command_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    device = models.ForeignKey("devices.Device", on_delete=models.PROTECT, related_name="commands")
    session = models.ForeignKey(
        "devices.InfusionSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="commands"
    )
    kind = models.CharField(max_length=20, choices=CommandKind.choices)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=CommandState.choices, default=CommandState.QUEUED)
    error = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "created_at"]), models.Index(fields=["device", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} to {self.device_id} ({self.state})"
