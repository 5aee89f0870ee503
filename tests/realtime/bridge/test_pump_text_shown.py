"""A pump's words are kept without the direction controls that would turn the server's words after them around, and
words a screen draws nothing of are no words (review 36, finding 6): a refusal's reason of "busy" and an open U+202E
reversed the waiting window's next sentence; an alarm's message, shown inside the station's "Bed 3 · <message> · for
12 s · ESCALATED", or the pump's firmware could do the same; a message of zero-width characters named the alarm by a
blank. Through the bridge's real batch ingest (cleaned where the message is read: protocol/visible_text.py)."""

import pytest

from devices.models import Alarm, Device
from devices.services.sessions import infusion_start
from protocol.visible_text import BIDI_CONTROLS
from tests.factories import make_device, make_order
from tests.support.ingest import ingest, report, send, start_sent

pytestmark = pytest.mark.django_db

RLO = "\u202e"  # right-to-left override, left open


def directions_in(text: str) -> list[str]:
    return [f"U+{ord(character):04X}" for character in text if character in BIDI_CONTROLS]


def test_an_alarms_words_keep_no_direction_control(django_capture_on_commit_callbacks):
    make_device("TEXT_ALARM", has_presence=True)
    body = {"type": f"occlusion{RLO}", "message": f"Line blocked{RLO}", "severity": f"high{RLO}",
            "errorCode": f"E7{RLO}", "bootId": "b1", "seq": 1}  # fmt: skip
    send(django_capture_on_commit_callbacks, "TEXT_ALARM", "error", body)
    alarm = Alarm.objects.get(device__device_id="TEXT_ALARM")
    for field in ("message", "type_shown", "severity_reported", "error_code"):
        shown = getattr(alarm, field)
        assert not directions_in(shown), f"the alarm's {field} {shown!r} keeps {directions_in(shown)}"
    assert (alarm.type, alarm.message) == ("occlusion", "Line blocked"), "the alarm's key or words changed"


def test_an_alarm_message_that_draws_nothing_is_no_message(django_capture_on_commit_callbacks):
    """The pages name an alarm by its message, else by its type: a message of zero-width characters named it by a
    blank ("Bed 3 ·  · for 12 s")."""
    make_device("TEXT_BLANK", has_presence=True)
    send(django_capture_on_commit_callbacks, "TEXT_BLANK", "error",
         {"type": "occlusion", "message": "\u200b\ufeff", "bootId": "b1", "seq": 1})  # fmt: skip
    alarm = Alarm.objects.get(device__device_id="TEXT_BLANK")
    assert alarm.message == "", f"the alarm's message {alarm.message!r} draws nothing, yet stands for its name"


def test_an_alarm_type_that_draws_nothing_is_a_device_error_still_raised(django_capture_on_commit_callbacks):
    """A type of zero-width characters keyed "_" and, with no message, was shown as a blank: it is `device_error`,
    as a missing or empty type is, and still an alarm (when in doubt, alarm)."""
    make_device("TEXT_BLANK_TYPE", has_presence=True)
    send(django_capture_on_commit_callbacks, "TEXT_BLANK_TYPE", "error",
         {"type": "\u200b\u2060", "bootId": "b1", "seq": 1})  # fmt: skip
    alarm = Alarm.objects.get(device__device_id="TEXT_BLANK_TYPE")
    assert (alarm.type, alarm.type_shown, alarm.state) == ("device_error", "device_error", "active"), (
        f"an alarm typed with characters that draw nothing: key {alarm.type!r}, shown {alarm.type_shown!r}"
    )


def test_the_firmware_keeps_no_direction_control(django_capture_on_commit_callbacks):
    make_device("TEXT_FIRMWARE", has_presence=True)
    send(django_capture_on_commit_callbacks, "TEXT_FIRMWARE", "status",
         {"status": "online", "firmwareVersion": f"3.1{RLO}", "bootId": "b1", "seq": 1})  # fmt: skip
    firmware = Device.objects.get(device_id="TEXT_FIRMWARE").firmware_version
    assert firmware == "3.1", f"the pump's firmware is kept as {firmware!r}"


def test_a_refusals_reason_keeps_no_direction_control(django_capture_on_commit_callbacks):
    make_device("TEXT_REFUSAL", has_presence=True)
    session = infusion_start(device_id="TEXT_REFUSAL", order=make_order())
    start_sent(session)
    body = {"infusionId": session.infusion_id, "confirmed": False, "reason": f"busy{RLO}", "bootId": "b1", "seq": 1}
    ingest([report("TEXT_REFUSAL", "infusion", body)], django_capture_on_commit_callbacks)
    session.refresh_from_db()
    assert session.status_reason == "refused by the pump, its reason: busy", f"told {session.status_reason!r}"
