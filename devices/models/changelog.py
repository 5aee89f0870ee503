"""The change log (transactional outbox): every committed change of a pump, in `seq` order, for the publisher."""

from django.db import models


class ChangeLogEntry(models.Model):
    """One recorded change of one pump, written in the transaction that made it.

    The publisher of each Daphne process reads these rows in `id` order after they commit and sends them
    to the pump's subscribers; nothing else carries a change to a screen. Rows are kept for
    `CHANGE_LOG_KEEP_S` (housekeeping prunes older ones), long enough for any publisher to catch up.

    A row outlives its pump: a pump deleted records `device:removed` in the deleting transaction, and that row (and
    the pump's changes not yet published) must still reach its screens. So the pump is named by its device id
    (`device_code`) and its row id (`device`, the registration, without a database constraint or a cascade).
    """

    # No index of its own: the unique constraint's (device, seq) serves every look-up by the pump (issue 17: an index
    # of the pump alone cost each change's insert one more b-tree and page written).
    device = models.ForeignKey(
        "devices.Device", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False,
        help_text="The pump's row (its registration); kept after the pump is deleted.",
    )  # fmt: skip
    device_code = models.CharField(max_length=64, help_text="The pump's device id, as its events name it.")
    seq = models.PositiveBigIntegerField(help_text="The pump's `event_seq` this change took.")
    event = models.CharField(max_length=40, help_text="The Socket.IO event, e.g. device:alarm.")
    body = models.JSONField(help_text="The event's own fields (the payload without deviceId and seq).")
    ward_code = models.CharField(max_length=32, null=True, blank=True, help_text="The pump's ward at the change.")
    created_at = models.DateTimeField(help_text="When the change was recorded, inside its transaction.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "seq"], name="change_log_one_entry_per_seq")]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.device_id}#{self.seq}"
