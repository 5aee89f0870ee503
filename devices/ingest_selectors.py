"""Selectors of the bridge's ingest: which pumps are registered, the payloads last applied on a topic, whether a
message key was used by another message, and since when a bridge starting again was away from the broker."""

from datetime import datetime

from devices.models import BridgeStatus, Device, MessageReceipt, RetainedMessage


def device_pks_by_id(*, device_ids: set[str]) -> dict[str, int]:
    """`{device_id: row id}` of those of `device_ids` that are registered (one query)."""
    return dict(Device.objects.filter(device_id__in=device_ids).values_list("device_id", "pk"))


def device_pk_of(*, device_id: str) -> int | None:
    """The row id of the pump registered with this id, or None."""
    return Device.objects.filter(device_id=device_id).values_list("pk", flat=True).first()


def receipt_key_reused(*, device_pk: int, boot_id: str, device_seq: int, since: datetime | None) -> bool:
    """Whether another message than the one being applied was received under this (pump, bootId, seq) since `since`
    (the pump's last restart under this bootId; None: ever): its own receipt is claimed before it is applied."""
    receipts = MessageReceipt.objects.filter(device_id=device_pk, boot_id=boot_id, device_seq=device_seq)
    if since is not None:
        receipts = receipts.filter(received_at__gte=since)
    return receipts[:2].count() > 1


def retained_digests(*, topic: str) -> set[str]:
    """The digests a retained copy on this topic is a replay of: the payload and the presence status last applied
    there (empty: nothing applied yet)."""
    row = RetainedMessage.objects.filter(topic=topic).values_list("digest", "presence_digest").first()
    return {digest for digest in row or () if digest}


def bridge_away_since(*, name: str) -> float | None:
    """When the bridge of this name last held the broker, as epoch seconds (None: never ran): a bridge starting
    again was away since then, its lost link's moment or, if it died holding the broker, its last heartbeat."""
    status = BridgeStatus.objects.filter(name=name).exclude(heartbeat_at=None).first()
    if status is None:
        return None
    lost = status.broker_lost_since if not status.broker_connected else None
    return (lost or status.heartbeat_at).timestamp()
