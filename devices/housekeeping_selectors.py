"""Selectors of the time-driven checks: unconfirmed, silent and stale pumps (the bridge's housekeeping)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from devices.models import Alarm, Device, InfusionSession
from devices.states import AlarmState, Presence, SessionStatus


def sessions_unconfirmed_since(*, cutoff: datetime, limit: int) -> list[str]:
    """Infusion ids of pending sessions created before `cutoff` (unconfirmed too long), oldest first."""
    overdue = InfusionSession.objects.filter(status=SessionStatus.PENDING, created_at__lt=cutoff)
    return list(overdue.order_by("created_at").values_list("infusion_id", flat=True)[:limit])


def silent_sessions_filter(now: datetime) -> Q:
    """Running sessions unheard (no progress, no state change) for longer than the heartbeat timeout."""
    cutoff = now - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
    return Q(status=SessionStatus.RUNNING, status_changed_at__lt=cutoff) & (
        Q(device__latest_progress_at__isnull=True) | Q(device__latest_progress_at__lt=cutoff)
    )


def devices_silent_unalarmed(*, now: datetime, limit: int) -> list[str]:
    """Pumps whose running session is silent past the heartbeat and not yet alarmed `communication_lost`."""
    alarmed = Alarm.objects.filter(device=OuterRef("device"), type="communication_lost", state=AlarmState.ACTIVE)
    silent = InfusionSession.objects.filter(silent_sessions_filter(now)).exclude(Exists(alarmed))
    return list(silent.order_by("status_changed_at").values_list("device__device_id", flat=True)[:limit])


def devices_stale_without_presence(*, cutoff: datetime) -> set[str]:
    """Pumps without presence last heard before `cutoff` and not known offline (they have turned stale)."""
    stale = Device.objects.filter(has_presence=False, last_seen_at__lt=cutoff).exclude(presence=Presence.OFFLINE)
    return set(stale.values_list("device_id", flat=True))
