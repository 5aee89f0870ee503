"""Selectors of the bridge's ingest: which pumps are registered, the payloads last applied on a topic, and since
when a bridge starting again was away from the broker."""

from devices.models import BridgeStatus, Device, RetainedMessage


def device_pks_by_id(*, device_ids: set[str]) -> dict[str, int]:
    """`{device_id: row id}` of those of `device_ids` that are registered (one query)."""
    return dict(Device.objects.filter(device_id__in=device_ids).values_list("device_id", "pk"))


def device_pk_of(*, device_id: str) -> int | None:
    """The row id of the pump registered with this id, or None."""
    return Device.objects.filter(device_id=device_id).values_list("pk", flat=True).first()


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
