"""The JSON the pages start from, in the same shapes as the Socket.IO events that then update them."""

from django.conf import settings
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, Device, DeviceEvent, InfusionSession, ProgressSample
from devices.selectors import alarms_active, commands_recent, events_recent, session_current
from devices.views.event_log import event_text
from devices.ward_payloads import ward_pump_body
from protocol import limits
from protocol.payload_codec import payload_to_wire


def pump_summary(device: Device, session: InfusionSession | None, alarms: list[Alarm]) -> dict:
    """One overview row: the `ward:summary` fields plus what the page needs to label it."""
    return {
        **payload_to_wire(ward_pump_body(device, session, alarms)),
        "name": device.name,
        "ward": device.ward.code if device.ward_id else None,
    }


def page_settings() -> dict:
    """The timeouts and time zone the browser needs to compute staleness and countdowns itself."""
    return {
        "timeZone": settings.TIME_ZONE,
        "heartbeatTimeoutS": settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"],
        "confirmationTimeoutS": settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"],
        "bridgeStaleAfterS": settings.PUMPSTREAM["BRIDGE_STALE_AFTER_S"],
        "serverNow": payloads.iso(timezone.now()),
    }


def event_entry(event: DeviceEvent) -> dict:
    """One line of the monitor's event log."""
    return {
        "id": event.pk,
        "kind": event.kind,
        "at": payloads.iso(event.received_at),
        "user": event.user.get_username() if event.user_id else None,
        "infusionId": event.session.infusion_id if event.session_id else None,
        "summary": event_summary(event),
        "text": event_text(event),  # the clinical sentence; None: not shown on the monitor (the admin has it)
    }


def event_entries(events: list[DeviceEvent]) -> list[dict]:
    """The monitor's event log of `events` (newest first): each `event_entry`, an `offline` status reported while the
    pump was already offline left unsaid. The broker hands the bridge a pump's Last Will twice after the bridge was
    away (the copy queued for its session and the retained one of its subscription): "The pump went offline" read
    twice at the same second. The audit keeps both (the admin shows them)."""
    entries = [event_entry(event) for event in events]
    presence = None  # the last status before the entry, reading oldest first
    for event, entry in zip(reversed(events), reversed(entries), strict=True):
        if event.kind != "mqtt.status":
            continue
        status = event.payload.get("status") if isinstance(event.payload, dict) else None
        if status == "offline" and presence == "offline":
            entry["text"] = None
        presence = status
    return entries


def event_summary(event: DeviceEvent) -> str:
    """A short human reading of an audit event's payload."""
    payload = event.payload or {}
    for key in ("message", "reason", "status", "action", "command", "type"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value[:160]
    if "to" in payload:
        return f"{payload.get('from')} → {payload.get('to')}"
    return ""


def sample_point(sample: ProgressSample) -> dict:
    """One chart point: receive time and delivered volume."""
    return {
        "at": payloads.iso(sample.recorded_at),
        "deliveredVolumeMl": sample.delivered_volume_ml,
        "progressPercent": sample.progress_percent,
        "status": sample.status,
    }


def progress_shown(device: Device, session: InfusionSession | None) -> dict | None:
    """The progress the monitor starts from: the session's own (a new order shows none yet, never the last
    infusion's final report under its id), or the pump's latest when it came after that session ended (infusing
    without an order) or while an order waits on a pump infusing its own, labelled with no infusion."""
    own = session.progress_on(device) if session is not None else None
    if own is not None:
        body = payloads.progress_body(own, infusion_id=session.infusion_id, received_at=session.progress_at_on(device),
                                      session=session)  # fmt: skip
    elif payloads.progress_beside_pending(device, session) is not None:
        body = payloads.progress_body(device.latest_progress, infusion_id=None, received_at=device.latest_progress_at)
    elif (
        device.latest_progress is not None
        and device.latest_progress_at is not None
        and (session is None or (session.ended_at is not None and session.progress_after_its_end(device)))
    ):
        body = payloads.progress_body(device.latest_progress, infusion_id=None, received_at=device.latest_progress_at)
    else:
        return None
    return payload_to_wire(body)["progress"]


def monitor_state(device: Device) -> dict:
    """Everything the monitor page starts from, as the payloads of the events that later update it."""
    session = session_current(device)
    progress = progress_shown(device, session)
    return {
        "deviceId": device.device_id,
        "seq": device.event_seq,
        "status": payload_to_wire(payloads.status_body(device))["status"],
        "session": payload_to_wire(payloads.session_body(session))["session"] if session else None,
        "progress": progress,
        "alarms": [payload_to_wire(payloads.alarm_body(alarm))["alarm"] for alarm in alarms_active(device)],
        "commands": [payload_to_wire(payloads.command_body(command))["command"] for command in commands_recent(device)],
        "events": event_entries(events_recent(device)),
        "maxVolumeMl": device.max_volume_ml,
        # the limits the server applies to this pump's orders (`order_limits_check`), for the wizard to check first
        "orderLimits": limits.order_limits_for_page(device.max_rate_ml_min, device.max_bolus_ml),
    }
