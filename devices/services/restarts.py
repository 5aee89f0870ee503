"""Restarts and idle reports end what the pump was doing (protocol v1.1).

A pump restarted when a non-retained message carries a `bootId` other than the last one heard, or its own
`bootId` with a status whose `uptime` went back by more than a reordering tolerance (a pump reusing its `bootId`:
an unseeded `random()`); for the original firmware (no `bootId`), when a non-retained message's uptime
`timestamp` went backwards (but for its 32-bit wrap after 49.7 days, told by the wall-clock time since the last
uptime), or on its post-boot `test` message. Retained replays never count. A restart ends the active session
`interrupted` with a high `infusion_interrupted` alarm stating the volume delivered in all (unless the pump then
reports that infusion running: evidence wins). An `idle`/`healthy` report ends a running or paused session
`completed` only when its last progress said completed or nothing remained (but what the pump could have delivered
since: `unreported.py`), else `interrupted`.
"""

import logging
from datetime import datetime, timedelta

from devices.models import Device, DeviceEvent, InfusionSession
from devices.payloads import percent_of
from devices.services.alarms import alarm_raise
from devices.services.changes import event_record
from devices.services.pump_state import pump_state_set
from devices.services.records import message_receipts_retire
from devices.services.restart_commands import commands_lost_in_restart, commands_sent_to_the_new_run
from devices.services.sessions import session_transition
from devices.services.tolerances import VOLUME_TOLERANCE_ML, is_figure
from devices.services.unreported import percent_says_finished, unreported_ml
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    SESSION_ON_PUMP_STATUSES,
    AlarmPriority,
    AlarmSource,
    PumpState,
    SessionStatus,
)
from protocol.salvage import refused_fields
from protocol.schemas import DevicePayload, StatusPayload

logger = logging.getLogger(__name__)

RESTARTED_EVENT = "pump.restarted"  # the audit of a restart told (`pump_restarted`)
UPTIME_BACKWARDS_TOLERANCE_MS = 1_000.0  # a pump's own clock jitter, never a restart
UPTIME_BELIEVED_MAX_MS = 10 * 366 * 86_400_000.0  # ten years: a longer uptime tells no boot moment
# The original firmware's uptime is the ESP32's 32-bit `millis()`: it wraps to 0 every 2^32 ms (49.7 days), and
# nothing is published while paused. Going back is that wrap, not a restart, when the uptime wrapped on matches the
# wall-clock time since the last uptime was received, within UPTIME_WRAP_CLOCK_TOLERANCE_MS (broker and bridge
# delays) plus the pump's own jitter. A reboot matches only by chance, near the wrap moment: its post-boot `test`
# message still tells it. With no receive time stored (rows from before it was), the wrap must continue within
# UPTIME_WRAP_GAP_MS.
UPTIME_WRAP_MS = 2.0**32
UPTIME_WRAP_CLOCK_TOLERANCE_MS = 60_000.0
UPTIME_WRAP_GAP_MS = 600_000.0
# A pump with a `bootId` is told restarted under that same `bootId` by its statuses' `uptime` (ms since its boot)
# alone: never by `seq` (a 16-bit wrap, a tick's progress and status under one `seq`) nor by its `timestamp` (any
# clock, on every topic). Its messages arrive in order per topic, but one may come late (a QoS 1 retransmission after
# a reconnect overtaken by newer ones; the two status topics): an uptime back by no more than
# UPTIME_REORDER_TOLERANCE_MS, or one received no later than the last uptime, is such a late message, never a
# restart, and leaves the pump's uptime mark where it is. Its messages may wait at the broker through a bridge outage,
# so its millis() wrap is told one-sided: the uptime gone on across 2^32 ms is at most the wall-clock time since the
# last uptime (waiting only delays a message). A reboot after less than the tolerance of uptime is not told by it.
# Nor is an uptime above the wall-clock time since the last one arrived (+UPTIME_WRAP_CLOCK_TOLERANCE_MS): a reboot
# came after the pump's last message, so its uptime counts from then; an older uptime received later is the pump's own
# queue, sent after the `online` of its reconnect (`_booted_since`, review 21).
UPTIME_REORDER_TOLERANCE_MS = 60_000.0


def pump_restart_check(*, device: Device, kind: str, report: DevicePayload, retained: bool, now: datetime) -> bool:
    """Whether this report shows a restart; if so, what the pump was doing ends (`pump_restarted`) and it is idle.

    A report read without its `bootId` (`protocol/salvage.py`: one odd in form) tells none and moves no mark: which
    run it comes from is unknown, and its `timestamp` compared as the original firmware's uptime would tell a pump
    that has a `bootId` restarted falsely. One read without its `uptime` is judged by its `bootId` alone (a new one is
    a restart; the same one compares nothing), as one that sends none.
    """
    if "bootId" in refused_fields(report):
        return False
    boot_before = (device.boot_id, device.last_uptime_ms, device.last_uptime_at)
    # A status's own uptime field only; never a Last Will's (`offline`): its body was written when the pump connected,
    # so its uptime is as old as that connection (review 21)
    uptime = report.uptime if isinstance(report, StatusPayload) and report.status != "offline" else None
    why = pump_restart_detect(device=device, boot_id=report.bootId, timestamp=report.timestamp, kind=kind,
                              retained=retained, received_at=now, uptime=uptime)  # fmt: skip
    if (device.boot_id, device.last_uptime_ms, device.last_uptime_at) != boot_before:
        device.save(update_fields=["boot_id", "last_uptime_ms", "last_uptime_at"])
    if not why:
        return False
    if device.boot_id and device.boot_id == boot_before[0]:  # rebooted under the same bootId: the run before's
        message_receipts_retire(device_pk=device.pk, boot_id=device.boot_id, before=now)  # receipts are not this one's
    pump_restarted(device=device, why=why, now=now)
    pump_state_set(device=device, state=PumpState.IDLE)
    return True


def pump_restart_detect(
    *,
    device: Device,
    boot_id: str | None,
    timestamp: object,
    kind: str,
    retained: bool,
    received_at: datetime,
    uptime: object = None,
) -> str:
    """Why this report shows a restart ("" if it does not); updates the pump's boot markers in memory.

    `uptime` is a status's `uptime` field (None for other reports). The caller saves `boot_id`, `last_uptime_ms` and
    `last_uptime_at` with the pump's row.
    """
    if retained:
        return ""
    if boot_id:
        return _boot_restart(device, boot_id[:64], _milliseconds(uptime), received_at)
    uptime_ms = _milliseconds(timestamp)  # the original firmware's `timestamp` is its millis()
    if kind == "test":
        device.last_uptime_ms = uptime_ms
        device.last_uptime_at = received_at if uptime_ms is not None else None
        return "the pump's post-boot test message"
    if uptime_ms is None:
        return ""
    previous_uptime, previous_at = device.last_uptime_ms, device.last_uptime_at
    device.last_uptime_ms, device.last_uptime_at = uptime_ms, received_at
    if previous_uptime is None or uptime_ms >= previous_uptime - UPTIME_BACKWARDS_TOLERANCE_MS:
        return ""
    if _uptime_wrapped(uptime_ms + UPTIME_WRAP_MS - previous_uptime, previous_at, received_at):
        return ""  # millis() wrapped after 49.7 days
    return f"uptime went back from {previous_uptime:.0f} ms to {uptime_ms:.0f} ms"


def _boot_restart(device: Device, boot_id: str, uptime_ms: float | None, received_at: datetime) -> str:
    """A `bootId` other than the last one heard; or the same one with its status's uptime gone back (a reboot)."""
    previous = device.boot_id
    if previous != boot_id:
        device.boot_id, device.last_uptime_ms = boot_id, uptime_ms  # the new run's uptime, never the old run's
        device.last_uptime_at = received_at if uptime_ms is not None else None
        return f"new bootId {boot_id}" if previous else ""
    last_ms, last_at = device.last_uptime_ms, device.last_uptime_at
    if uptime_ms is None or (last_at is not None and received_at <= last_at):
        return ""  # no uptime told, or received before the last one (older news): nothing to compare
    if last_ms is not None and last_at is not None and uptime_ms <= last_ms:
        if uptime_ms >= last_ms - UPTIME_REORDER_TOLERANCE_MS or not _booted_since(uptime_ms, last_at, received_at):
            return ""  # a late message of this run: the mark stays at the newest uptime
        if not _uptime_wrapped(uptime_ms + UPTIME_WRAP_MS - last_ms, last_at, received_at, queued=True):
            device.last_uptime_ms, device.last_uptime_at = uptime_ms, received_at
            return f"uptime went back from {last_ms:.0f} ms to {uptime_ms:.0f} ms under bootId {boot_id}"
    device.last_uptime_ms, device.last_uptime_at = uptime_ms, received_at
    return ""


def _booted_since(uptime_ms: float, last_at: datetime, received_at: datetime) -> bool:
    """Whether a pump whose uptime is `uptime_ms` now can have booted after its last uptime arrived (at `last_at`).

    A reboot's uptime counts from a boot that came after the pump sent its last message, so it is at most the time
    since (within the broker's and the bridge's delays). An older uptime received later is the pump's own queue: a
    pump that lost its link for minutes sends its `online` (its uptime now) on reconnecting, then the QoS 1 statuses it
    queued meanwhile (review 21: a pause at the bedside during a Wi-Fi drop was an `interrupted` infusion)."""
    return uptime_ms <= (received_at - last_at).total_seconds() * 1000 + UPTIME_WRAP_CLOCK_TOLERANCE_MS


def _milliseconds(value: object) -> float | None:
    """A numeric uptime in ms (above 0: no pump has been up for no time); None for text (ISO, H:M:S), 0, a negative
    value or nothing (review 21: one status saying 0 or -1 in a run that went on ended its infusion), and for a number
    above `UPTIME_BELIEVED_MAX_MS`: a wall clock in epoch ms (1.8e12), not an uptime, whose NTP step back is no reboot
    (review 44, F6: told a restart, a high `infusion_interrupted` raised and cleared within one message)."""
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if numeric and 0 < value <= UPTIME_BELIEVED_MAX_MS else None


def _uptime_wrapped(
    wrapped_on_ms: float, previous_at: datetime | None, received_at: datetime, *, queued: bool = False
) -> bool:
    """Whether the uptime gone on across its wrap matches the wall-clock time since the previous uptime.

    `queued`: the pump's messages may wait at the broker (QoS 1 with a session), so the uptime gone on may be less than
    that time, never more; the original firmware's (QoS 0, never queued) must match it both ways.
    """
    if wrapped_on_ms < 0:
        return False
    if previous_at is None:
        return wrapped_on_ms <= UPTIME_WRAP_GAP_MS
    elapsed_ms = (received_at - previous_at).total_seconds() * 1000
    tolerance_ms = UPTIME_WRAP_CLOCK_TOLERANCE_MS + UPTIME_BACKWARDS_TOLERANCE_MS
    if queued:
        return wrapped_on_ms <= elapsed_ms + tolerance_ms
    return abs(wrapped_on_ms - elapsed_ms) <= tolerance_ms


def pump_restarted_since(*, device: Device, since: datetime) -> bool:
    """Whether a restart of the pump was told (`pump_restarted`, its audit) at or after `since` (server time)."""
    return DeviceEvent.objects.filter(device=device, kind=RESTARTED_EVENT, received_at__gte=since).exists()


def pump_restarted(*, device: Device, why: str, now: datetime) -> InfusionSession | None:
    """The pump restarted: record it and when it booted (`pump_booted_at`), and end what it was doing `interrupted`;
    returns that session."""
    device.booted_at = pump_booted_at(device=device, now=now)
    device.save(update_fields=["booted_at"])
    event_record(device=device, kind=RESTARTED_EVENT, payload={"why": why, "bootedAt": device.booted_at.isoformat()},
                 received_at=now)  # fmt: skip
    session = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()
    if session is None or (session.status == SessionStatus.PENDING and session.delivered_at is None):
        return None  # nothing was on the pump (a START not delivered yet may still reach it)
    logger.warning("pump restarted during an infusion",
                   extra={"device_id": device.device_id, "infusion_id": session.infusion_id, "why": why})  # fmt: skip
    _interrupt(device, session, f"the pump restarted ({why})", now, restarted=True)
    return session


def pump_booted_at(*, device: Device, now: datetime) -> datetime:
    """When the pump booted into the run a restart told at `now`, on the server's clock: `now` less the uptime the
    telling report gave (`pump_restart_detect` has just set the pump's uptime mark from it), else `now` itself.

    No pump clock is read: the uptime is a duration the pump counted, subtracted from the server's receive time. Both
    are at or after the real boot (a report arrives after it was sent, a restart is told after it happened), so a
    command judged by it errs one way only: one published just after the boot may be judged lost with the run
    before (failed, "act at the pump"), never one the run before had taken for the new run's. Never earlier than a
    boot told before: the latest boot is what the pump's commands are judged by (`restart_commands`,
    `commands.failed_within_deadline`)."""
    told = boot_moment(now, device.last_uptime_ms) if device.last_uptime_at == now else None
    booted = told or now
    return max(booted, device.booted_at) if device.booted_at is not None else booted


def boot_moment(received_at: datetime, uptime_ms: object) -> datetime | None:
    """`received_at` less the uptime a report told, if it tells a boot: a number, not negative, at most
    `UPTIME_BELIEVED_MAX_MS`; else None. A hostile or broken pump's 2**53 ms overflowed the subtraction
    (OverflowError, found by PostgreSQL's fuzz run in ci4): the report telling the restart was dead-lettered
    `internal_error` and the restart never applied (the infusion still shown running)."""
    if isinstance(uptime_ms, bool) or not isinstance(uptime_ms, int | float):
        return None
    if not 0 <= uptime_ms <= UPTIME_BELIEVED_MAX_MS:  # NaN and infinities too
        return None
    return received_at - timedelta(milliseconds=uptime_ms)


def session_end_on_idle(
    *, device: Device, reported: str, now: datetime, sent: object = None
) -> InfusionSession | None:  # fmt: skip
    """An `idle`/`healthy` report (received `now`, sent at its own `sent`): a running or paused session ends completed
    if nothing remained but what the pump could have delivered since its last progress, else interrupted."""
    session = InfusionSession.objects.filter(device=device, status__in=SESSION_ON_PUMP_STATUSES).first()
    if session is None:
        return None
    unreported = unreported_ml(device=device, session=session, sent=sent, received_at=now)
    if progress_says_finished(session.progress_on(device), unreported=unreported, planned_ml=session.planned_volume_ml):
        session_transition(device=device, session=session, to=SessionStatus.COMPLETED, now=now,
                           reason=f"the pump reports {reported} after its last progress said finished")  # fmt: skip
    else:
        _interrupt(device, session, f"the pump reports {reported} before the infusion finished", now)
    return session


def progress_says_finished(progress: dict | None, *, unreported: float = 0.0, planned_ml: float = 0.0) -> bool:
    """Whether a progress report said completed, or that nothing remained to infuse but the `unreported` mL the pump
    could have delivered since (`unreported.unreported_ml`; of the order's `planned_ml`, for its percentage)."""
    progress = progress or {}
    if progress.get("status") == "completed":
        return True
    remaining = progress.get("volumeRemainingMl")
    if is_figure(remaining) and remaining <= VOLUME_TOLERANCE_ML + unreported:
        return True
    return percent_says_finished(percent_of(progress), planned_ml=planned_ml, unreported=unreported)


def infusion_interrupt(*, device: Device, session: InfusionSession, reason: str, now: datetime) -> None:
    """End the running or paused `session` `interrupted` for `reason` (not a restart), with `infusion_interrupted`."""
    _interrupt(device, session, reason, now)


def _interrupt(
    device: Device, session: InfusionSession, reason: str, now: datetime, *, restarted: bool = False
) -> None:
    """End `session` interrupted, with `infusion_interrupted` if it had run. After a restart (`restarted`), a person's
    Pause, Resume or Stop under way published before the pump booted again was lost in it, not "not needed": the pump
    may run that infusion again; one published after the boot went to the new run and stays under way
    (`restart_commands.py`). An idle report ends the infusion itself: those are superseded, as at any end."""
    was, was_reason, new_run = session.status, session.status_reason, []  # who paused it, if paused: said if it runs
    # again, and since when: a Resume asked after it is a person's (`paused_runs_again`)
    paused_at = session.paused_at.isoformat() if was == SessionStatus.PAUSED and session.paused_at else None
    if restarted:
        new_run = commands_sent_to_the_new_run(device=device, session=session, booted_at=device.booted_at)
        commands_lost_in_restart(device=device, session=session, now=now, spared=new_run)
    delivered = _delivered_told(session, device)
    session_transition(device=device, session=session, to=SessionStatus.INTERRUPTED, reason=reason, now=now,
                       commands_kept=new_run)  # fmt: skip
    if was == SessionStatus.PENDING:
        return  # never started: the session's status says so, the pump is free
    before = round(session.delivered_before_run_ml, 3) if isinstance(delivered, int | float) else 0.0
    alarm_raise(
        device=device, session=session, type="infusion_interrupted", priority=AlarmPriority.HIGH,
        source=AlarmSource.SERVER, now=now,
        details={"deliveredVolumeMl": delivered, "reason": reason, "was": was, "wasReason": was_reason,
                 "pausedAt": paused_at, **({"deliveredBeforeMl": before} if before else {})},
        message=(f"Infusion {session.infusion_id} was interrupted: {reason}. Last delivered volume: "
                 f"{_volume_told(delivered, before)}"),
    )  # fmt: skip


def _delivered_told(session: InfusionSession, device: Device) -> float | None:
    """The volume an interrupted infusion delivered: in all, each run of the pump's count summed (a count that went
    back left less than was delivered: review 29, finding 3; a pump reporting only what remains is counted too), else
    the pump's last count (a session from before the volume in all was kept), else None."""
    if session.delivered_in_all_ml is not None:
        return round(session.delivered_in_all_ml, 3)
    counted = (session.progress_on(device) or {}).get("deliveredVolumeMl")
    return counted if isinstance(counted, int | float) and not isinstance(counted, bool) else None


def _volume_told(delivered: float | None, before: float) -> str:
    """'34 mL in all (24 mL before the pump's count went back, 10 mL counted since)', '10 mL', or unknown."""
    if delivered is None:
        return "unknown (no progress received)"
    if not before:
        return f"{delivered:g} mL"
    return (f"{delivered:g} mL in all ({before:g} mL before the pump's count went back, "
            f"{round(delivered - before, 3):g} mL counted since)")  # fmt: skip
