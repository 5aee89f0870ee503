"""Selectors of the bridge's ingest: which pumps are registered, the payloads last applied on a topic, since
when a bridge starting again was away from the broker, which redelivered messages were tried before, and a pump's
active alarm keys (its budget)."""

from devices.models import Alarm, BridgeStatus, DeliveryAttempt, Device, RetainedMessage
from devices.states import AlarmState


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


def delivery_attempts_known(keys: list[str]) -> set[str]:
    """Which of these redelivered messages were tried before (by a bridge run that did not finish them)."""
    return set(DeliveryAttempt.objects.filter(key__in=keys).values_list("key", flat=True))


def alarm_keys_active(*, device_id: str) -> set[tuple[str, str]]:
    """The (type key, errorCode) of a pump's active alarms, one per alarm the pump holds apart from its session (one
    query; the bridge's bound on distinct active alarms: an alarm is one per type and errorCode)."""
    active = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
    return set(active.values_list("type", "error_code"))
