"""Restarts and idle reports end what the pump was doing (protocol v1.1).

A pump restarted when a non-retained message carries a `bootId` other than the last one heard; for the
original firmware (no `bootId`), when a non-retained message's uptime `timestamp` went backwards (but for
its 32-bit wrap after 49.7 days, told by the wall-clock time since the last uptime), or on its post-boot
`test` message. Retained replays never count. A restart ends the active session `interrupted` with a high
`infusion_interrupted` alarm stating the last delivered volume (unless the pump then reports that infusion
running: evidence wins). An `idle`/`healthy` report ends a running or paused session `completed` only when
its last progress said completed or nothing remained, else `interrupted`.
"""

import logging
from datetime import datetime

from devices.models import Device, InfusionSession
from devices.payloads import percent_of
from devices.services.alarms import alarm_raise
from devices.services.changes import event_record
from devices.services.readback import VOLUME_TOLERANCE_ML
from devices.services.sessions import session_transition
from devices.states import ACTIVE_SESSION_STATUSES, SESSION_ON_PUMP_STATUSES, AlarmPriority, AlarmSource, SessionStatus

logger = logging.getLogger(__name__)

UPTIME_BACKWARDS_TOLERANCE_MS = 1_000.0  # a pump's own clock jitter, never a restart
# The original firmware's uptime is the ESP32's 32-bit `millis()`: it wraps to 0 every 2^32 ms (49.7 days), and
# nothing is published while paused. Going back is that wrap, not a restart, when the uptime wrapped on matches the
# wall-clock time since the last uptime was received, within UPTIME_WRAP_CLOCK_TOLERANCE_MS (broker and bridge
# delays) plus the pump's own jitter. A reboot matches only by chance, near the wrap moment: its post-boot `test`
# message still tells it. With no receive time stored (rows from before it was), the wrap must continue within
# UPTIME_WRAP_GAP_MS.
UPTIME_WRAP_MS = 2.0**32
UPTIME_WRAP_CLOCK_TOLERANCE_MS = 60_000.0
UPTIME_WRAP_GAP_MS = 600_000.0


def pump_restart_detect(
    *, device: Device, boot_id: str | None, timestamp: object, kind: str, retained: bool, received_at: datetime
) -> str:
    """Why this report shows a restart ("" if it does not); updates the pump's boot markers in memory.

    The caller saves `boot_id`, `last_uptime_ms` and `last_uptime_at` with the pump's row.
    """
    if retained:
        return ""
    if boot_id:
        previous, device.boot_id = device.boot_id, boot_id[:64]
        return f"new bootId {boot_id[:64]}" if previous and previous != device.boot_id else ""
    numeric = isinstance(timestamp, int | float) and not isinstance(timestamp, bool)
    if kind == "test":
        device.last_uptime_ms = float(timestamp) if numeric else None
        device.last_uptime_at = received_at if numeric else None
        return "the pump's post-boot test message"
    if numeric:
        previous_uptime, previous_at = device.last_uptime_ms, device.last_uptime_at
        device.last_uptime_ms, device.last_uptime_at = float(timestamp), received_at
        if previous_uptime is not None and timestamp < previous_uptime - UPTIME_BACKWARDS_TOLERANCE_MS:
            if _uptime_wrapped(timestamp + UPTIME_WRAP_MS - previous_uptime, previous_at, received_at):
                return ""  # millis() wrapped after 49.7 days
            return f"uptime went back from {previous_uptime:.0f} ms to {timestamp:.0f} ms"
    return ""


def _uptime_wrapped(wrapped_on_ms: float, previous_at: datetime | None, received_at: datetime) -> bool:
    """Whether the uptime gone on across its wrap matches the wall-clock time since the previous uptime."""
    if wrapped_on_ms < 0:
        return False
    if previous_at is None:
        return wrapped_on_ms <= UPTIME_WRAP_GAP_MS
    elapsed_ms = (received_at - previous_at).total_seconds() * 1000
    return abs(wrapped_on_ms - elapsed_ms) <= UPTIME_WRAP_CLOCK_TOLERANCE_MS + UPTIME_BACKWARDS_TOLERANCE_MS


def pump_restarted(*, device: Device, why: str, now: datetime) -> InfusionSession | None:
    """The pump restarted: record it, and end what it was doing `interrupted`; returns that session."""
    event_record(device=device, kind="pump.restarted", payload={"why": why}, received_at=now)
    session = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()
    if session is None or (session.status == SessionStatus.PENDING and session.delivered_at is None):
        return None  # nothing was on the pump (a START not delivered yet may still reach it)
    logger.warning("pump restarted during an infusion",
                   extra={"device_id": device.device_id, "infusion_id": session.infusion_id, "why": why})  # fmt: skip
    _interrupt(device, session, f"the pump restarted ({why})", now)
    return session


def session_end_on_idle(*, device: Device, reported: str, now: datetime) -> InfusionSession | None:
    """An `idle`/`healthy` report: a running or paused session ends completed if nothing remained, else interrupted."""
    session = InfusionSession.objects.filter(device=device, status__in=SESSION_ON_PUMP_STATUSES).first()
    if session is None:
        return None
    if progress_says_finished(session.progress_on(device)):
        session_transition(device=device, session=session, to=SessionStatus.COMPLETED, now=now,
                           reason=f"the pump reports {reported} after its last progress said finished")  # fmt: skip
    else:
        _interrupt(device, session, f"the pump reports {reported} before the infusion finished", now)
    return session


def progress_says_finished(progress: dict | None) -> bool:
    """Whether a progress report said completed, or that nothing remained to infuse."""
    progress = progress or {}
    if progress.get("status") == "completed":
        return True
    remaining = progress.get("volumeRemainingMl")
    if isinstance(remaining, int | float) and remaining <= VOLUME_TOLERANCE_ML:
        return True
    percent = percent_of(progress)
    return percent is not None and percent >= 100


def _interrupt(device: Device, session: InfusionSession, reason: str, now: datetime) -> None:
    was = session.status
    delivered = (session.progress_on(device) or {}).get("deliveredVolumeMl")
    session_transition(device=device, session=session, to=SessionStatus.INTERRUPTED, reason=reason, now=now)
    if was == SessionStatus.PENDING:
        return  # never started: the session's status says so, the pump is free
    volume = f"{delivered:g} mL" if isinstance(delivered, int | float) else "unknown (no progress received)"
    alarm_raise(
        device=device, session=session, type="infusion_interrupted", priority=AlarmPriority.HIGH,
        source=AlarmSource.SERVER, now=now, details={"deliveredVolumeMl": delivered, "reason": reason},
        message=f"Infusion {session.infusion_id} was interrupted: {reason}. Last delivered volume: {volume}",
    )  # fmt: skip
