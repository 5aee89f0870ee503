"""Review 12: two different alarms whose types are written in another script (Cyrillic, CJK...) and have the same
length shared one key, so the second was taken for a repeat of the first: no alert, no notification, no sound, and
the screen kept showing the first alarm's type. By the contract's key rule alone ("lower-cased, every other
character than `a-z 0-9 _` turned into `_`") "Окклюзия" (occlusion) and "Пузырьки" (air bubbles) are both
`________`, "閉塞" and "気泡" both `__`. A type in another script now keeps its letters in its key; an ASCII type's
key is the contract's. Through the bridge's own batch (`BatchIngest`), as the pump's messages arrive.
"""

import pytest

from devices.models import Alarm
from devices.services.alarm_keys import alarm_type_key
from protocol import events
from tests.factories import make_device
from tests.support.ingest import send

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "first,second",
    [
        (("Окклюзия", "Окклюзия линии"), ("Пузырьки", "Воздух в линии")),  # occlusion / air in line (Russian)
        (("閉塞", "ライン閉塞"), ("気泡", "ライン内気泡")),  # occlusion / air bubble (Japanese)
    ],
    ids=["cyrillic", "japanese"],
)
def test_a_second_different_alarm_in_another_script_alerts_on_its_own(
    first, second, django_capture_on_commit_callbacks, emitted
):
    make_device("INTL_1")
    send(
        django_capture_on_commit_callbacks,
        "INTL_1",
        "error",
        {"type": first[0], "severity": "high", "message": first[1]},
        1,
    )
    emitted.clear()
    send(
        django_capture_on_commit_callbacks,
        "INTL_1",
        "error",
        {"type": second[0], "severity": "high", "message": second[1]},
        5,
    )
    active = list(Alarm.objects.filter(device__device_id="INTL_1", state="active")
                  .values_list("type", "type_reported", "count", "message"))  # fmt: skip
    notified = [change.event for change in emitted if change.event == events.DEVICE_NOTIFICATION]
    assert len(active) == 2, f"the pump's {second[0]!r} alarm was counted as a repeat of {first[0]!r}: {active}"
    assert notified, "the second alarm was never notified (no sound, no announcement)"


def test_a_clearing_in_another_script_clears_its_own_alarm_only(django_capture_on_commit_callbacks):
    make_device("INTL_2")
    for n, body in enumerate(({"type": "Окклюзия", "severity": "high"}, {"type": "Пузырьки", "severity": "high"},
                              {"type": "Окклюзия_cleared"})):  # fmt: skip
        send(django_capture_on_commit_callbacks, "INTL_2", "error", body, n + 1)
    active = list(
        Alarm.objects.filter(device__device_id="INTL_2", state="active").values_list("type_reported", flat=True)
    )
    assert active == ["Пузырьки"], f"the occlusion's clearing must clear it, and only it: still active {active}"


@pytest.mark.parametrize(
    "reported,key",
    [
        ("Occlusion Detected (downstream)", "occlusion_detected__downstream_"),  # the contract's own example
        ("AIR-IN-LINE", "air_in_line"),
        ("ＯＣＣＬＵＳＩＯＮ", "occlusion"),  # full-width: the same letters
        ("Окклюзия линии", "окклюзия_линии"),
        ("閉塞", "閉塞"),
        ("Druck ↑", "druck_↑"),
        ("Straße", "strasse"),
        ("!!!", "___"),
        ("", "device_error"),
    ],
)
def test_the_key_of_a_type(reported, key):
    assert alarm_type_key(reported) == key


# Review 13: symbols of a non-ASCII type are kept (the direction of a limit), and a clearing pairs with its alarm
# however long the type's key grew under case folding (the 64-character cut is the base's, before `_cleared`).


@pytest.mark.parametrize("first,second", [("Druck ↑", "Druck ↓"), ("Давление ↑", "Давление ↓"),
                                          ("Flow ≥ max", "Flow ≤ max")])  # fmt: skip
def test_two_directions_of_a_limit_are_two_keys(first, second):
    assert alarm_type_key(first) != alarm_type_key(second), (
        f"{first!r} and {second!r} share the key {alarm_type_key(first)!r}"
    )


def test_pressure_low_after_pressure_high_alerts_on_its_own(django_capture_on_commit_callbacks, emitted):
    make_device("SYM_1")
    send(django_capture_on_commit_callbacks, "SYM_1", "error",
         {"type": "Druck ↑", "severity": "medium", "message": "Druck zu hoch"}, 1)  # fmt: skip
    emitted.clear()
    send(django_capture_on_commit_callbacks, "SYM_1", "error",
         {"type": "Druck ↓", "severity": "medium", "message": "Druck zu niedrig"}, 5)  # fmt: skip
    active = list(Alarm.objects.filter(device__device_id="SYM_1", state="active")
                  .values_list("type", "type_reported", "count"))  # fmt: skip
    notified = [change for change in emitted if change.event == events.DEVICE_NOTIFICATION]
    assert len(active) == 2, f"'Druck ↓' was counted as a repeat of 'Druck ↑': {active}"
    assert notified, "the second (opposite) alarm was never notified"


def test_a_clearing_of_a_long_expanding_type_clears_it(django_capture_on_commit_callbacks, emitted):
    make_device("LONG_1")
    # 56 characters: by the old rule its key was 56 long and `..._cleared` exactly 64, a clearing; under casefold
    # each 'ß' is 'ss', the key is 59 long, and the clearing's key is cut to `..._clea`
    reported = "Durchflußsensor: Schließventil geschlossen, Fluß gestört"
    assert len(reported) == 56  # its key: 56 by the old rule (pairs), 59 now (its clearing no longer does)
    send(django_capture_on_commit_callbacks, "LONG_1", "error", {"type": reported, "severity": "medium"}, 1)
    emitted.clear()
    send(django_capture_on_commit_callbacks, "LONG_1", "error", {"type": f"{reported}_cleared", "severity": "high"}, 5)
    active = list(Alarm.objects.filter(device__device_id="LONG_1", state="active").values_list("type", "priority"))
    assert active == [], f"the pump's clearing did not clear its alarm (taken for a new report of it): {active}"


def test_a_short_type_that_expands_still_pairs_with_its_clearing(django_capture_on_commit_callbacks):
    make_device("LONG_2")
    reported = "ﷺﷺﷺﷺ"  # 4 characters; each is 18 letters under NFKC
    send(django_capture_on_commit_callbacks, "LONG_2", "error", {"type": reported, "severity": "low"}, 1)
    send(django_capture_on_commit_callbacks, "LONG_2", "error", {"type": f"{reported}_cleared", "severity": "high"}, 5)
    active = list(Alarm.objects.filter(device__device_id="LONG_2", state="active")
                  .values_list("type_reported", "priority", "count"))  # fmt: skip
    assert active == [], f"a 4-character type's clearing raised it again at high instead of clearing it: {active}"


def test_a_long_ascii_types_clearing_still_pairs(django_capture_on_commit_callbacks):
    make_device("LONG_3")
    reported = "Downstream occlusion detected on channel A during bolus delivery"  # 64 characters
    send(django_capture_on_commit_callbacks, "LONG_3", "error", {"type": reported, "severity": "medium"}, 1)
    send(django_capture_on_commit_callbacks, "LONG_3", "error", {"type": f"{reported}_cleared", "severity": "high"}, 5)
    active = list(Alarm.objects.filter(device__device_id="LONG_3", state="active").values_list("type", "priority"))
    assert active == [], f"the clearing of a 64-character type was cut to a new alarm: {active}"
