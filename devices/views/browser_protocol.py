"""The protocol as the browser needs it, served from the Python definitions into every page (`json_script`).

`templates/base.html` writes it as `<script id="protocol-data" type="application/json">`; `static/js/protocol.js`
reads it, so no event name or state grouping is copied into the JavaScript.
"""

from django.http import HttpRequest

from devices.services.asked_at import ASKED_AT_MOST_S
from devices.services.start_refusals import REFUSED_BY_THE_PUMP
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    COMMAND_UNSETTLED_STATES,
    PUMP_INFUSING_STATES,
    SESSION_ON_PUMP_STATUSES,
)
from protocol import events

EVENT_NAMES = {
    "streamSubscribed": events.STREAM_SUBSCRIBED,
    "deviceEvents": list(events.DEVICE_EVENTS),
    "deviceStatus": events.DEVICE_STATUS,
    "deviceProgress": events.DEVICE_PROGRESS,
    "deviceAlarm": events.DEVICE_ALARM,
    "deviceSession": events.DEVICE_SESSION,
    "deviceCommand": events.DEVICE_COMMAND,
    "deviceInfusionCompleted": events.DEVICE_INFUSION_COMPLETED,
    "deviceRemoved": events.DEVICE_REMOVED,
    "wardSummary": events.WARD_SUMMARY,
    "wardAlarm": events.WARD_ALARM,
    "wardSilence": events.WARD_SILENCE,
    "wardEvents": [events.WARD_ALARM, events.WARD_SILENCE],
    "error": events.ERROR,
    "subscribeDevice": events.SUBSCRIBE_DEVICE,
    "unsubscribeDevice": events.UNSUBSCRIBE_DEVICE,
    "subscribeWard": events.SUBSCRIBE_WARD,
    "unsubscribeWard": events.UNSUBSCRIBE_WARD,
    "silenceWard": events.SILENCE_WARD,
}


def browser_protocol() -> dict:
    """Event names and the state groupings the pages test against, exactly as the server defines them."""
    return {
        "events": EVENT_NAMES,
        "activeSessionStatuses": [status.value for status in ACTIVE_SESSION_STATUSES],
        "onPumpSessionStatuses": [status.value for status in SESSION_ON_PUMP_STATUSES],
        "unsettledCommandStates": [state.value for state in COMMAND_UNSETTLED_STATES],
        "infusingPumpStates": [state.value for state in PUMP_INFUSING_STATES],
        "refusedByThePump": REFUSED_BY_THE_PUMP,  # how a session's reason begins for a pump's own refusal
        "askedAtMostS": ASKED_AT_MOST_S,  # a press whose request reaches the server later than this is refused
    }


def protocol_context(request: HttpRequest) -> dict:
    """Template context processor: `protocol` on every page (rendered by `templates/base.html`)."""
    return {"protocol": browser_protocol()}
