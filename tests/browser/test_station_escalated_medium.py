"""Review 32, finding 4: an unanswered medium alarm escalates too (ESCALATION_MEDIUM_S, 5 min), and the station must
then play the stronger pattern, the high one half as fast again, as docs/clinical-rules.md and the clinician guide
say. It went on playing the plain medium pattern: the escalation was shown but not heard."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.escalations import alarms_escalate
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}
SOUND = """({audio: document.getElementById('station').dataset.audio,
             mediumPlaying: !document.getElementById('station-audio-medium').paused,
             highPlaying: !document.getElementById('station-audio-high').paused,
             highRate: document.getElementById('station-audio-high').playbackRate})"""


def test_an_escalated_medium_alarm_plays_the_stronger_pattern(open_page, stack):
    ward = make_ward("r32m")
    make_device("R32_MED_1", ward=ward, bed="14", has_presence=True)
    page = open_page(make_user("r32m-nurse", ward=ward), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")

    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="R32_MED_1"), type="low_battery", priority=AlarmPriority.MEDIUM,
                    source=AlarmSource.DEVICE, message="Battery low: 10 min left")  # fmt: skip
    expect(station).to_have_attribute("data-audio", "medium", timeout=5_000)
    assert page.evaluate(SOUND)["mediumPlaying"]

    assert alarms_escalate(now=timezone.now() + timedelta(seconds=301)) == 1  # unanswered for 5 min: tier 1
    expect(page.locator("#station-alarm-list li").first).to_contain_text("ESCALATED to tier 1", timeout=10_000)
    expect(station, "an escalated alarm plays the stronger pattern").to_have_attribute("data-audio", "high")
    sound = page.evaluate(SOUND)
    assert sound["highPlaying"] and sound["highRate"] > 1 and not sound["mediumPlaying"], sound
