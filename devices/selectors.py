"""Selectors read: who may see which pumps, tokens, the bridge's liveness."""

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from devices.models import BridgeStatus, Device, ServiceAccount
from devices.models.accounts import hash_token


def devices_visible_to(principal) -> QuerySet[Device]:
    """Pumps a user or service account may see: its wards' pumps (staff and all-ward accounts: all)."""
    devices = Device.objects.select_related("ward")
    if isinstance(principal, ServiceAccount):
        return devices if principal.all_wards else devices.filter(ward__in=principal.wards.all())
    if not getattr(principal, "is_authenticated", False):
        return devices.none()
    if principal.is_staff:
        return devices
    return devices.filter(ward__members=principal)


def device_visible_to(principal, device_id: str) -> Device | None:
    """The pump if it exists and `principal` may see it, else None."""
    return devices_visible_to(principal).filter(device_id=device_id).first()


def device_exists(device_id: str) -> bool:
    """Whether a pump with this id is registered."""
    return Device.objects.filter(device_id=device_id).exists()


def service_account_for_token(token: str) -> ServiceAccount | None:
    """The active service account holding `token`, or None (revoked tokens are refused)."""
    if not isinstance(token, str) or not token:
        return None
    return ServiceAccount.objects.filter(token_hash=hash_token(token), revoked_at__isnull=True).first()


def bridge_status(name: str = "bridge") -> dict:
    """Whether monitoring itself is alive: the bridge's heartbeat is fresh and it holds the broker."""
    status = BridgeStatus.objects.filter(name=name).first()
    stale_after = timedelta(seconds=settings.PUMPSTREAM["BRIDGE_STALE_AFTER_S"])
    alive = bool(status and status.heartbeat_at and timezone.now() - status.heartbeat_at <= stale_after)
    return {
        "alive": alive,
        "brokerConnected": bool(alive and status.broker_connected),
        "heartbeatAt": status.heartbeat_at.isoformat() if status and status.heartbeat_at else None,
        "brokerLostSince": status.broker_lost_since.isoformat() if status and status.broker_lost_since else None,
    }
