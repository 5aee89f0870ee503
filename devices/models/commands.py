"""The command outbox: pages create rows, the bridge publishes them."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from devices.states import CommandKind, CommandState


class Command(models.Model):
    """One command to one pump and its life: queued → sent → delivered → done, or failed / expired / superseded."""

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
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When the person pressed, as her page told it on the server's clock (`askedAt`; null: asked by the server, or
    # from before it was kept): a request that arrives too long after it is refused (`requests.infusion_request`).
    asked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    # When the outbox handed it to the broker (the link took it): published, though still `queued` until the
    # broker's PUBACK is recorded (`sent_at`); the pump may already act on it.
    published_at = models.DateTimeField(null=True, blank=True)
    # When the outbox was about to hand it to the broker link (committed before paho has it, once per outbox cycle):
    # from then on it may have reached the pump, even if the bridge stalls or dies before `published_at` is stored,
    # so it never ends "expired" (never sent); cleared again when the link refused it (disconnected).
    handed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # The pump's connectivity when the command was asked for: a stale or offline pump is warned of and kept.
    pump_connectivity = models.CharField(max_length=8, blank=True)
    # A STOP queued to clear the pump's confirm screen of an order ended unconfirmed (a person's cancel or the
    # server's time-out), not to stop an infusion: withheld at publication from a pump reporting infusing.
    clears_screen = models.BooleanField(default=False)
    # A key the page sends with the request: the same key again (double click, retry) is the same command.
    idempotency_key = models.CharField(max_length=64, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "created_at"]), models.Index(fields=["device", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="one_command_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.device_id} ({self.state})"
