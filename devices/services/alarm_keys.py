"""The alarm key (contract v1.1 "Alarms"): a reported type's key, a pump's alarm key, what a clearing clears, the
priority a severity means, and what tells a repeat's wording from another condition. No database.

The server's alarm types' keys are the server's alone: a pump's alarm named alike (`Communication Lost`) is keyed
`device_communication_lost`, so it never shares a row with the server's, which the server's checks and clears
(by type key) therefore never meet, and no pump's `X_cleared` can reach.
"""

import re
import unicodedata
from typing import Any

from devices.states import SERVER_ALARM_TYPES, AlarmPriority

SEVERITY_PRIORITY = {
    "high": AlarmPriority.HIGH,
    "critical": AlarmPriority.HIGH,
    "medium": AlarmPriority.MEDIUM,
    "warning": AlarmPriority.MEDIUM,
    "low": AlarmPriority.LOW,
    "info": AlarmPriority.LOW,
}
CLEARED_SUFFIX = "_cleared"
DEFAULT_TYPE = "device_error"
DEVICE_KEY_PREFIX = "device_"  # before a pump's type key that is a server alarm type's
TYPE_KEY_MAX = 64
NOT_KEY_CHARS = re.compile(r"[^a-z0-9_]")
LITERAL_CLEARING = re.compile(r"\S+_cleared", re.IGNORECASE)  # the contract's `X_cleared` as sent (after NFKC)
NOT_WORDING = re.compile(r"[\s_\-]+")  # what two spellings of one condition may differ in besides case


def priority_from_severity(severity: Any) -> AlarmPriority:
    """The contract's mapping, case-insensitive; missing or unknown severity is high."""
    if isinstance(severity, str):
        return SEVERITY_PRIORITY.get(severity.strip().lower(), AlarmPriority.HIGH)
    return AlarmPriority.HIGH


def alarm_type_key(reported: str) -> str:
    """The type's key: lower-cased, every character but `a-z 0-9 _` turned into `_`, at most 64 (v1.1).

    A type in another script keeps its letters, digits, marks and symbols (NFKC, case-folded): by the contract's rule
    alone "Окклюзия" and "Пузырьки" (occlusion, air bubbles) were both `________`, and "Druck ↑" and "Druck ↓" (too
    high, too low) both `druck__`: one alarm, the second counted as a repeat and never announced (reviews 12, 13).
    An ASCII type's key is the contract's. A clearing's key is its base's (cut to 64) and `_cleared`, so that
    `X_cleared` still pairs with `X` however long `X` is, or grew under case folding ("ß" is "ss").
    """
    key = _key_uncut(reported)
    if key.endswith(CLEARED_SUFFIX):
        return f"{key.removesuffix(CLEARED_SUFFIX)[:TYPE_KEY_MAX]}{CLEARED_SUFFIX}"
    return key[:TYPE_KEY_MAX] or DEFAULT_TYPE


def alarm_is_clearing(reported: str) -> bool:
    """Whether a pump's `error` type is a clearing (`X_cleared`), judged before any cut."""
    return _key_uncut(reported).endswith(CLEARED_SUFFIX)


def alarm_is_literal_clearing(reported: str) -> bool:
    """Whether a pump's type is literally the contract's `X_cleared` (no space, `_cleared` as sent, any case, NFKC).

    Only such a type is a clearing even when it clears nothing; any other type whose key ends in `_cleared`
    ("Occlusion not cleared", "Line-not-cleared") is a clearing only if it clears an active alarm, else the alarm it
    says it is (when in doubt, alarm: review 15).
    """
    return LITERAL_CLEARING.fullmatch(unicodedata.normalize("NFKC", reported)) is not None


def _key_uncut(reported: str) -> str:
    if not reported.isascii():
        reported = unicodedata.normalize("NFKC", reported)  # full-width "ＯＣＣＬＵＳＩＯＮ" is "OCCLUSION"
    if reported.isascii():
        return NOT_KEY_CHARS.sub("_", reported.lower())
    return "".join(c if c == "_" or c.isalnum() or unicodedata.category(c)[0] in "MS" else "_"
                   for c in reported.casefold())  # fmt: skip


def device_alarm_key(reported: str) -> str:
    """A pump's alarm key: its type key, or `device_<key>` when that is a server alarm type's (never one row); at most
    64 in all, as stored (`Alarm.type`).

    A clearing's type key may be longer (its base's cut to 64, then `_cleared`: it pairs however long), but a type
    raised as an alarm ("..., not cleared": it cleared nothing) is stored: its base is cut to leave room for `_cleared`
    (review 23: a 72-character key failed the insert on PostgreSQL and the alarm was shown only as unreadable_alarm).
    """
    key = alarm_type_key(reported)
    if len(key) > TYPE_KEY_MAX:
        key = f"{key.removesuffix(CLEARED_SUFFIX)[: TYPE_KEY_MAX - len(CLEARED_SUFFIX)]}{CLEARED_SUFFIX}"
    return _device_key(key)


def _device_key(key: str) -> str:
    return f"{DEVICE_KEY_PREFIX}{key}" if key in SERVER_ALARM_TYPES else key


def server_alarm_key(type: str) -> str:
    """A server alarm's key: its type key, which must be one of `SERVER_ALARM_TYPES` (else ValueError)."""
    key = alarm_type_key(type)
    if key not in SERVER_ALARM_TYPES:
        raise ValueError(f"server alarm type {key!r} is not in SERVER_ALARM_TYPES (devices/states.py): add it there")
    return key


def alarm_wording(reported: str) -> str:
    """What a pump's type says, for telling a repeat from another condition under the same key: the contract's key
    turns every character but `a-z 0-9 _` into `_`, so "Flow > max" and "Flow < max" (too high, too low) share one;
    case, spaces, `_` and `-` are spelling ("Occlusion detected", "OCCLUSION_DETECTED"), any other character is news."""
    return NOT_WORDING.sub("", unicodedata.normalize("NFKC", reported).casefold())


def types_cleared_by(report_type: str) -> list[str]:
    """`X_cleared` clears `X` and `X_detected` (`bubble_cleared` clears `bubble_detected`), as a pump's keys.

    `communication_lost_cleared` names the pump's own `device_communication_lost`, never the server's alarm.
    """
    base = _key_uncut(report_type).removesuffix(CLEARED_SUFFIX)
    return [_device_key(base[:TYPE_KEY_MAX]), _device_key(f"{base}_detected"[:TYPE_KEY_MAX])]
