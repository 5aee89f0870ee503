"""Escalation tiers' Socket.IO rooms: a tier's group (e.g. charge nurses) gets `alarm:escalated` for its wards.

A signed-in user in a tier's group (ESCALATION_TIER_GROUPS) joins, on connecting, the room of that group
for each of their wards; an escalation to that tier is emitted there (the ward's stations see it on their
ward feed as `ward:alarm` in any case).
"""

from django.conf import settings

from protocol import events
from protocol.events import DeviceChange
from realtime.sio.auth import Principal


def escalation_room(group: str, ward_code: str) -> str:
    """The room of one tier group's members of one ward."""
    return f"escalation:{group}:{ward_code}"


def escalation_rooms(principal: Principal) -> list[str]:
    """The escalation rooms a connecting principal joins (none for service accounts)."""
    user = principal.user
    if principal.account is not None or user is None:
        return []
    tier_groups = {group.strip() for group in settings.PUMPSTREAM["ESCALATION_TIER_GROUPS"] if group.strip()}
    groups = tier_groups & set(user.groups.values_list("name", flat=True))
    if not groups:
        return []
    wards = list(user.wards.values_list("code", flat=True))
    return [escalation_room(group, ward) for group in sorted(groups) for ward in wards]


def escalation_target(change: DeviceChange) -> tuple[str, dict] | None:
    """(room, `alarm:escalated` payload) when the change is an escalation to a tier with a group, else None."""
    escalated = change.body.get("escalated") if change.event == events.DEVICE_ALARM else None
    if not escalated or not escalated.get("group") or not change.ward_code:
        return None
    return escalation_room(escalated["group"], change.ward_code), events.ward_alarm_body(change)
