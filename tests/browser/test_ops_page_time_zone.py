"""The operations page shows its times in the server's TIME_ZONE, as every other page does (review 35, finding 4).

ops.js formatted its own with `toLocaleTimeString()`, the browser's zone: in a browser in Tokyo the last update, the
bridge's heartbeat, the dead letters and since when the totals count read 9 h off the monitor's times and the logs'.
"""

import re

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import make_user
from tests.support.browser import session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_ops_page_shows_times_in_the_servers_zone_whatever_the_browsers(chromium, stack):
    zone = "Asia/Tokyo" if settings.TIME_ZONE != "Asia/Tokyo" else "America/New_York"
    context = chromium.new_context(locale="en-GB", timezone_id=zone, bypass_csp=True)
    try:
        context.add_cookies([session_cookie(make_user("ops-zone", is_staff=True, is_superuser=True), stack["url"])])
        page = context.new_page()
        page.goto(stack["url"] + "/ops/")
        at = page.locator("#ops-at")
        expect(at).to_have_text(re.compile(r"^\d\d:\d\d:\d\d"), timeout=10_000)
        shown, here = at.inner_text()[:5], timezone.localtime()  # TIME_ZONE
        # the hour may have turned between the two readings
        assert (int(shown[:2]) - here.hour) % 24 in (0, 1, 23), (
            f"the ops page says {shown} at {here:%H:%M} {settings.TIME_ZONE} (the browser in {zone})"
        )
        heartbeat = page.locator("#ops-bridge dd").first
        expect(heartbeat).to_have_text(re.compile(r"^\d\d:\d\d:\d\d"))
        assert (int(heartbeat.inner_text()[:2]) - here.hour) % 24 in (0, 1, 23), (
            f"the bridge's heartbeat says {heartbeat.inner_text()!r} at {here:%H:%M} {settings.TIME_ZONE}"
        )
    finally:
        context.close()
