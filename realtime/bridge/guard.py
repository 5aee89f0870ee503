"""The bridge's last line for one message: what is an infrastructure failure, and the alarm a lost error owes.

Failures of the infrastructure (`INFRASTRUCTURE_ERRORS`: the database down, locked or full) are not about
one message: they are never dead-lettered; the caller retries them unacknowledged. Anything else raised
while handling one message is about that message: it is dead-lettered, counted and acknowledged, and if
it was a registered pump's `error`, the pump still gets a high `unreadable_alarm`.
"""

import hashlib
import logging

from django.db import InterfaceError, OperationalError

from devices.services.protection import alarm_unreadable_raise
from realtime.mqtt import topics

logger = logging.getLogger(__name__)

INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError)


def message_key(topic: str, payload: bytes) -> str:
    """What identifies a message across redeliveries: SHA-256 of its topic and payload."""
    return hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()


def unreadable_error_alarm(topic: str, reason: str, detail: str) -> None:
    """After an `error` message of a registered pump was dead-lettered: its high `unreadable_alarm` (own savepoint)."""
    try:
        parsed = topics.parse_device_topic(topic)
    except topics.TopicError:
        return
    if parsed.kind != topics.ERROR:
        return
    try:
        alarm_unreadable_raise(device_id=parsed.device_id, reason=reason, detail=detail)
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception:  # guarded: the dead letter and the log already hold the message
        logger.exception("unreadable_alarm not raised", extra={"device_id": parsed.device_id, "reason": reason})
