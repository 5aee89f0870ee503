"""Review 49: an alarm's flash is lit half of each cycle and off the other half (IEC 60601-1-8 Table 2's duty cycle,
20-60 % on; docs/clinical-rules.md "each lit half the time"). The `flash` animation runs `steps(2, start)` over
keyframes at 0 % (none), 50 % (brightness 1.35) and 100 % (none): a timing function applies to each keyframe
segment, not to the whole cycle, so each half is itself cut in two steps. The strip is then at 1.175, 1.35, 1.175
and 1.0 in the four quarters: brighter than steady three quarters of the cycle, fully lit one quarter, a staircase
rather than a flash. Sampled at each quarter of a paused animation in chromium."""

import pytest
from playwright.sync_api import expect

from devices.models import Alarm
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The strip's filter at each quarter of its flash cycle (the animation paused there)
QUARTERS = """(element) => {
  const [animation] = element.getAnimations();
  animation.pause();
  const cycle = animation.effect.getComputedTiming().duration;
  return [0.125, 0.375, 0.625, 0.875].map((share) => {
    animation.currentTime = cycle * share;
    return getComputedStyle(element).filter;
  });
}"""


@pytest.mark.parametrize("priority", [AlarmPriority.HIGH, AlarmPriority.MEDIUM])
def test_an_alarm_flash_is_lit_half_the_cycle_and_off_the_other_half(open_page, stack, priority):
    ward = make_ward("duty")
    nurse = make_user("duty-nurse", ward=ward)
    pump = make_device("DUTY_PUMP", ward=ward, bed="1")
    Alarm.objects.create(device=pump, type="occlusion", priority=priority, message="Line blocked",
                         source=AlarmSource.DEVICE)  # fmt: skip
    page = open_page(nurse, "/?ward=duty")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    strip = page.locator(f'.pump-card[data-device-id="{pump.device_id}"] .alarm-strip')
    expect(strip).to_contain_text("Line blocked")
    quarters = strip.evaluate(QUARTERS)
    lit = sum(value != "none" and value != "brightness(1)" for value in quarters)
    assert len(set(quarters)) == 2 and lit == 2, (
        f"the {priority} alarm's strip over its flash cycle, quarter by quarter: {quarters} (lit {lit} of 4 quarters, "
        f"{len(set(quarters))} levels; a flash is two, each half the cycle)"
    )
