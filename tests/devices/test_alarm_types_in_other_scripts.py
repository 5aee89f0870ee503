"""Review 12: two different alarms whose types are written in another script (Cyrillic, CJK...) and have the same
length shared one key, so the second was taken for a repeat of the first: no alert, no notification, no sound, and
the screen kept showing the first alarm's type. By the contract's key rule alone ("lower-cased, every other
character than `a-z 0-9 _` turned into `_`") "Окклюзия" (occlusion) and "Пузырьки" (air bubbles) are both
`________`, "閉塞" and "気泡" both `__`. A type in another script now keeps its letters in its key; an ASCII type's
key is the contract's. Through the bridge's own batch (`BatchIngest`), as the pump's messages arrive.
"""

import pytest

from devices.models import Alarm
from devices.services.alarms import alarm_type_key
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
        ("Straße", "strasse"),
        ("!!!", "___"),
        ("", "device_error"),
    ],
)
def test_the_key_of_a_type(reported, key):
    assert alarm_type_key(reported) == key
