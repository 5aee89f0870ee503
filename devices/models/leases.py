"""Leases between bridge processes: which process owns a slot of the pumps, and which runs housekeeping."""

from django.db import models


class BridgeLease(models.Model):
    """One lease: held by `owner` until `expires_at` (the database's clock, `now()`), renewed while it lives.

    Rows are the bridge's slots (`slot-0` .. `slot-<K-1>`) and `housekeeping`. A lease whose `expires_at`
    has passed may be claimed by any live bridge (`devices/services/leases.py`). `connected_since` is when
    the owner's MQTT session of the slot was last connected (null while it is not): the housekeeping
    measures silence of a slot's pumps only once that is a grace period old, and as of `caught_up_at`, so
    that a bridge behind on its messages does not make its pumps look silent (null until the owner has applied
    what it received after the slot's link connected: a slot taken over is not judged by an earlier moment).
    """

    name = models.CharField(max_length=64, primary_key=True)
    owner = models.CharField(max_length=128, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    connected_since = models.DateTimeField(null=True, blank=True)
    caught_up_at = models.DateTimeField(
        null=True, blank=True, help_text="Every message its owner received before this (its clock) is applied."
    )

    def __str__(self) -> str:
        return f"{self.name} held by {self.owner or 'nobody'}"
