"""The monitor's event log in a clinician's words: who did what, and what the pump did in answer.

The audit log keeps every event in its raw form (the admin shows it); here each kind a nurse needs is
told in a plain sentence, and transport chatter (acknowledgements of commands, the pump's own status
words, test messages) is left out: `event_text` returns None for it.
"""

from collections.abc import Callable

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from devices.models import DeviceEvent
from devices.services.named import REPORT_FOR_OTHER_INFUSION
from devices.services.start_refusals import REFUSED_BY_THE_PUMP
from devices.templatetags.units import significant
from protocol.limits import MINUTES_PER_HOUR

COMMAND_VERB = {"PAUSE_INFUSION": "pause", "RESUME_INFUSION": "resume", "STOP_INFUSION": "stop",
                "START_INFUSION": "start"}  # fmt: skip
SESSION_TEXT = {
    "running": "Infusion running",
    "paused": "Infusion paused",
    "completed": "Infusion completed",
    "stopped": "Infusion stopped",
    "rejected": "The pump rejected the infusion",
    "timed_out": "The pump did not confirm the infusion in time",
    "cancelled": "Start cancelled",
}
# Reasons that are codes, not words for a person (the session's status already says it).
CODED_REASONS = {"confirmed", "resumed", "paused", "running", "completed", "stopped"}


def _who(event: DeviceEvent) -> str:
    return event.user.get_username() if event.user_id else "Someone"


def _alarm_name(payload: dict) -> str:
    return str(payload.get("type") or "alarm").replace("_", " ")


def _cleared_name(payload: dict) -> str:
    """The alarm a pump's clearing names: its first key ("occlusion" for `Occlusion_Cleared`)."""
    keys = payload.get("keys")
    return _alarm_name({"type": keys[0]}) if isinstance(keys, list) and keys else "an alarm"


def _reason(payload: dict) -> str:
    reason = payload.get("reason")
    if not isinstance(reason, str) or not reason or reason in CODED_REASONS:
        return ""
    return f" ({reason.replace('_', ' ')})"


def _start(event: DeviceEvent, payload: dict) -> str:
    order = payload.get("order") or {}
    rate, volume = order.get("flowRateMlMin"), order.get("plannedVolumeMl")
    drug = payload.get("drug") or "an unnamed drug"
    dose = (
        f" at {significant(rate * MINUTES_PER_HOUR)} mL/h, {volume:g} mL"
        if isinstance(rate, int | float) and volume
        else ""
    )
    return f"{_who(event)} started {drug}{dose}"


def _user_command(verb: str) -> Callable[[DeviceEvent, dict], str]:
    """A person's press: "nurse asked the pump to pause (line change), pressed at 10:02:11"; one that joined a
    colleague's command under way says so (nothing more was sent to the pump)."""

    def text(event: DeviceEvent, payload: dict) -> str:
        said = f"{_who(event)} asked the pump to {verb}{_reason(payload)}{_pressed(event, payload)}"
        if payload.get("joined"):
            by = f" asked by {payload['joinedBy']}" if isinstance(payload.get("joinedBy"), str) else ""
            said += f": joined the {verb} already under way{by} (not sent again)"
        return said

    return text


def _pressed(event: DeviceEvent, payload: dict) -> str:
    """When she pressed, as her page told it (", pressed at 10:02:11"), when the event says it."""
    moment = parse_datetime(payload["askedAt"]) if isinstance(payload.get("askedAt"), str) else None
    return f", pressed at {timezone.localtime(moment):%H:%M:%S}" if moment and moment.tzinfo else ""


def _command_refused(event: DeviceEvent, payload: dict) -> str:
    """A press not carried out: its request came too late, or the pump changed after it (review 46)."""
    verb = COMMAND_VERB.get(payload.get("command"), "act")
    late = payload.get("receivedAfterS")
    came = f", reached the server {late:.0f} s later" if isinstance(late, int | float) and late >= 1 else ""
    why = "the pump reported a change after the press" if payload.get("refused") == "pump_changed" else "too late"
    return (f"{_who(event)} asked the pump to {verb}{_pressed(event, payload)}{came}: refused ({why}), nothing sent "
            "to the pump")  # fmt: skip


def _session(event: DeviceEvent, payload: dict) -> str:
    to = payload.get("to") or event.kind.removeprefix("session.")
    if to == "running" and payload.get("from") == "pending":
        return "The pump confirmed: infusion running"
    if to == "running" and payload.get("from") == "paused":
        return "Infusion resumed"
    reason = payload.get("reason")
    if to == "rejected" and isinstance(reason, str) and reason.startswith(REFUSED_BY_THE_PUMP):
        return f"The pump refused the infusion{reason.removeprefix(REFUSED_BY_THE_PUMP)}"  # its reason, not a Reject
    return f"{SESSION_TEXT.get(to, to.replace('_', ' ').capitalize())}{_reason(payload)}"


def _answer_unmatched(event: DeviceEvent, payload: dict) -> str | None:
    """An answer to a start naming no infusion that was not the order waiting's (`bare_answers`); other reports of
    another infusion (late copies) are transport detail."""
    if not payload.get("why") or payload.get("infusionId"):
        return None
    said = {"rejected": "a Reject", "received_start_command": "receiving an order"}.get(payload.get("report"))
    why, said = payload["why"], said or "an answer"
    if payload.get("mayBeCurrent"):  # the pump may have meant the order waiting: never said to be not about it
        return f"The pump reported {said} that may be an earlier order's: not applied ({why}). Check at the pump"
    return f"The pump reported {said} that is not about the order waiting: not applied ({why})"


def _command_outcome(event: DeviceEvent, payload: dict) -> str | None:
    outcome = event.kind.removeprefix("command.")
    if outcome not in {"failed", "expired"}:
        return None  # queued/sent/delivered/done: the user's request and the session's change say it
    verb = COMMAND_VERB.get(payload.get("command"), "command")
    error = f": {payload['error']}" if payload.get("error") else ""
    return f"The {verb} command {'failed' if outcome == 'failed' else 'was not delivered in time'}{error}"


def _presence(event: DeviceEvent, payload: dict) -> str | None:
    # "online" is repeated by some pumps as a heartbeat: only going offline is news in the log
    return "The pump went offline" if payload.get("status") == "offline" else None


TEXT_OF_KIND: dict[str, Callable[[DeviceEvent, dict], str | None]] = {
    "user.infusion_start": _start,
    "user.pause_infusion": _user_command("pause"),
    "user.resume_infusion": _user_command("resume"),
    "user.stop_infusion": _user_command("stop"),
    "user.command_refused": _command_refused,
    "user.alarm_acknowledged": lambda event, p: f"{_who(event)} acknowledged the {_alarm_name(p)} alarm",
    "user.alarm_resolved": lambda event, p: f"{_who(event)} resolved the {_alarm_name(p)} alarm{_reason(p)}",
    "alarm.cleared": lambda event, p: f"Alarm cleared: {_alarm_name(p)}",
    "alarm.clearing_unmatched": lambda event, p: f"The pump cleared {_cleared_name(p)}, which was not active",
    "alarm.reminded": lambda event, p: f"Reminder: the {_alarm_name(p)} alarm is still active",
    "alarm.flood_news": lambda event, p: (
        f"The {_alarm_name(p)} alarm alerts again: the pump's flood hid alarms not signalled yet"
    ),
    "mqtt.status": _presence,
    "pump.report_late": lambda event, p: (
        f"The pump's {p.get('kind')} message numbered {p.get('seq')} came late, after its {p.get('seqApplied')}: "
        + ("its alarm raised, nothing else applied" if p.get("raised") else "not applied")
    ),
    REPORT_FOR_OTHER_INFUSION: _answer_unmatched,
    "server.command_withdrawn": lambda event, p: (
        f"The {_command_name(p.get('command'))} of the pump's own infusion was withdrawn unsent: an order runs now"
    ),
    "server.stop_withdrawn": lambda event, p: (
        f"The stop that was to clear the pump's screen was withdrawn unsent: {_pump_does(p.get('reason'))}"
    ),
}


def _command_name(kind: object) -> str:
    """STOP_INFUSION → "stop" (a command kind in a nurse's words)."""
    return str(kind or "command").removesuffix("_INFUSION").lower()


def _pump_does(reason: object) -> str:
    """What the pump did that withheld a clearing STOP, in a nurse's words (the reason names infusion ids)."""
    runs = str(reason or "").removeprefix("the pump ").startswith("runs")
    return "the pump runs the infusion" if runs else "the pump reports infusing"


def event_text(event: DeviceEvent) -> str | None:
    """One event in plain clinical language, or None when it is transport detail a nurse does not need."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    kind = event.kind
    if kind in TEXT_OF_KIND:
        return TEXT_OF_KIND[kind](event, payload)
    if kind.startswith("session."):
        return _session(event, payload)
    if kind.startswith("alarm.raised."):
        priority = str(payload.get("priority") or "").capitalize()
        message = f": {payload['message']}" if payload.get("message") else ""
        return f"{priority + ' alarm' if priority else 'Alarm'} raised: {_alarm_name(payload)}{message}"
    if kind.startswith("command."):
        return _command_outcome(event, payload)
    return None
