"""Selectors for many pumps' snapshots at once: one query per kind of row for a whole batch of pumps.

The one-pump selectors at the end (`session_active`, `alarms_active_as_raised`, `commands_unsettled`) answer the
same questions for one pump; the batch ones group the answers by the pump's row id, in the same order.
"""

from collections import defaultdict

from devices.models import Alarm, Command, Device, InfusionSession
from devices.states import ACTIVE_SESSION_STATUSES, COMMAND_UNSETTLED_STATES, AlarmState


def devices_for_snapshot(*, device_ids: list[str]) -> list[Device]:
    """These pumps (those registered) with their wards."""
    return list(Device.objects.select_related("ward").filter(device_id__in=device_ids))


def sessions_active_by_device(*, device_pks: list[int]) -> dict[int, InfusionSession]:
    """Each pump's active session (pending, running or paused; at most one per pump), by pump row id."""
    sessions = InfusionSession.objects.filter(device_id__in=device_pks, status__in=ACTIVE_SESSION_STATUSES)
    return {session.device_id: session for session in sessions}


def alarms_active_by_device(*, device_pks: list[int]) -> dict[int, list[Alarm]]:
    """Each pump's active alarms in the order they were raised, by pump row id."""
    alarms = Alarm.objects.filter(device_id__in=device_pks, state=AlarmState.ACTIVE)
    grouped: dict[int, list[Alarm]] = defaultdict(list)
    for alarm in alarms.select_related("session", "acknowledged_by").order_by("raised_at", "pk"):
        grouped[alarm.device_id].append(alarm)
    return grouped


def commands_unsettled_by_device(*, device_pks: list[int]) -> dict[int, list[Command]]:
    """Each pump's commands still under way (queued, sent, delivered), oldest first, by pump row id."""
    commands = Command.objects.filter(device_id__in=device_pks, state__in=COMMAND_UNSETTLED_STATES)
    grouped: dict[int, list[Command]] = defaultdict(list)
    for command in commands.select_related("session", "created_by").order_by("created_at", "pk"):
        grouped[command.device_id].append(command)
    return grouped


def session_active(device: Device) -> InfusionSession | None:
    """The pump's active session (pending, running or paused), if any."""
    return InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()


def session_latest(device: Device) -> InfusionSession | None:
    """The pump's most recent session, active or ended: the one placed last (`pk`, as `selectors.session_current`)."""
    return InfusionSession.objects.filter(device=device).order_by("-pk").first()


def alarms_active_as_raised(device: Device) -> list[Alarm]:
    """The pump's active alarms in the order they were raised (what a snapshot replays)."""
    alarms = Alarm.objects.filter(device=device, state=AlarmState.ACTIVE).select_related("session", "acknowledged_by")
    return list(alarms.order_by("raised_at", "pk"))


def commands_unsettled(device: Device) -> list[Command]:
    """The pump's commands still under way (queued, sent, delivered), oldest first."""
    commands = Command.objects.filter(device=device, state__in=COMMAND_UNSETTLED_STATES)
    return list(commands.select_related("session", "created_by").order_by("created_at", "pk"))
