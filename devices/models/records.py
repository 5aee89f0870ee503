"""Append-only records: device events, dead letters, duplicate guards and the bridge's heartbeat."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class DeviceEvent(models.Model):
    """Every accepted message but routine progress, every command, user action and system decision."""

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="events")
    session = models.ForeignKey(
        "devices.InfusionSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    kind = models.CharField(max_length=48, help_text="e.g. mqtt.status, command.queued, user.alarm_ack")
    topic = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    device_timestamp = models.JSONField(null=True, blank=True, help_text="As the pump sent it.")
    device_timestamp_parsed = models.DateTimeField(null=True, blank=True)
    device_seq = models.BigIntegerField(null=True, blank=True)
    boot_id = models.CharField(max_length=64, blank=True)
    # PROTECT here and on every clinical row naming a person: who acted is the audit; deactivate, never delete
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["device", "-received_at"]), models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.device_id} {self.received_at:%Y-%m-%d %H:%M:%S}"


class MessageReceipt(models.Model):
    """The duplicate guard for messages that carry `seq` and `bootId`: each is applied once.

    A message is its key (pump, bootId, seq) and its `digest` (its kind as the topic parser reads it, and its
    payload): a redelivered or replayed copy, or the same status on the legacy and the new status topic, has the
    same; another payload under a key already used is another message (a pump that reused its bootId after a
    reboot), applied, never dropped. Its `kind` is kept beside (the digest cannot be read back): only a message of the
    same kind under a used key exempts one numbered below the pump's mark from being late (`late_reports.py`).
    """

    # No index of its own: the unique constraint's index begins with the pump and serves every look-up by it (an
    # index of the pump alone cost each receipt's insert one more b-tree and page written, issue 17).
    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="+", db_index=False)
    boot_id = models.CharField(max_length=64)
    device_seq = models.BigIntegerField()
    digest = models.BigIntegerField(
        default=0, help_text="64 bits of the BLAKE2b of the kind and payload; 0: received before digests were kept."
    )
    # Written by the receipts' own INSERT (`records.RECEIPT_KINDS`); not part of the key (the digest holds the kind)
    kind = models.SmallIntegerField(
        db_default=0, help_text="The message's kind (records.RECEIPT_KINDS); 0: received before kinds were kept."
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "boot_id", "device_seq", "digest"], name="one_receipt_per_message_bytes"
            )
        ]
        indexes = [models.Index(fields=["received_at"])]


class HeldCopy(models.Model):
    """An alarm a pump sent now (no MQTT DUP, not retained) that was skipped as a copy: the same `bootId`, `seq` and
    bytes as one applied before. Under a reused `bootId` it may be the rebooted pump's own, sent before the status
    that tells the reboot (a power-on self-test occlusion: review 25, finding 3). Held a short while, a few per pump
    and a bounded number in all (`devices/services/copies.py`); claimed again when a status tells a reboot since it
    was received, deleted otherwise."""

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="+")
    boot_id = models.CharField(max_length=64)
    topic = models.CharField(max_length=200)
    payload = models.BinaryField()
    received_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["device", "boot_id", "received_at"]), models.Index(fields=["received_at"])]


class RetainedMessage(models.Model):
    """Per topic, the digests a retained copy handed back by the broker may be a replay of, so it is applied once.

    The broker keeps the last payload a pump published retained; the bridge sees live messages without their
    retain flag (no retain-as-published), so it keeps the last payload applied and, on a status topic, the last
    presence status applied (`online`/`offline`, the only statuses pumps retain): news sent after a retained
    `online` (a `degraded`) must not make that `online` look new when it is handed back.
    """

    topic = models.CharField(max_length=200, unique=True)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the payload last applied on this topic.")
    presence_digest = models.CharField(
        max_length=64, blank=True, default="", help_text="SHA-256 of the presence status last applied on this topic."
    )
    applied_at = models.DateTimeField(default=timezone.now)


class DeadLetter(models.Model):
    """A rejected message: why, from where, and an excerpt; bounded per source."""

    topic = models.CharField(max_length=200)
    source = models.CharField(max_length=200, help_text="The device id as claimed, or the client.")
    reason = models.CharField(max_length=48)
    detail = models.CharField(max_length=500, blank=True)
    payload_excerpt = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["source", "received_at"]), models.Index(fields=["reason"])]


class DeliveryAttempt(models.Model):
    """A redelivered message the bridge is trying again: how often it began without finishing.

    Written and committed before the bridge applies a message the broker handed back (MQTT DUP), and
    deleted in the transaction that applies it; a count that survives crashes finds the message that
    keeps taking the bridge down, so it can be dead-lettered instead of retried for ever.
    """

    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of topic and payload.")
    topic = models.CharField(max_length=200)
    attempts = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)


class BridgeStatus(models.Model):
    """The bridge's own liveness, written every few seconds, so monitoring itself can be seen down."""

    name = models.CharField(max_length=64, unique=True, default="bridge")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    broker_connected = models.BooleanField(default=False)
    broker_connected_since = models.DateTimeField(null=True, blank=True)
    broker_lost_since = models.DateTimeField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "bridge status"

    def __str__(self) -> str:
        return self.name
