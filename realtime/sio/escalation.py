"""Escalation tiers' recipients: a tier's group (e.g. charge nurses) gets `alarm:escalated` for its wards.

The recipients are read when the escalation arrives (the members of the tier's group, ESCALATION_TIER_GROUPS,
who belong to the pump's ward now: `devices.selectors.escalation_recipients`), so a nurse moved to another ward or
out of the group is no longer paged on a socket opened before. The ward's stations see every escalation on their
ward feed as `ward:alarm` too.
"""

from protocol import events
from protocol.events import DeviceChange
from protocol.ward_payloads import ward_alarm_body


def escalation_target(change: DeviceChange) -> tuple[str, str, dict] | None:
    """(group, ward, `alarm:escalated` payload) when the change is an escalation to a tier with a group."""
    escalated = change.body.get("escalated") if change.event == events.DEVICE_ALARM else None
    if not escalated or not escalated.get("group") or not change.ward_code:
        return None
    return escalated["group"], change.ward_code, ward_alarm_body(change)
