"""WCAG 2.2 AA in a real browser: axe-core (npm devDependency, served to the page by the test only) finds no
serious or critical violation on the sign-in page, the overview, the monitor and each step of the start wizard;
a skip link and a favicon on every page; a live region that announces a new alarm."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Alarm
from devices.services.alarm_rules import alarms_remind
from devices.services.alarms import alarm_acknowledge
from devices.states import AlarmPriority, AlarmSource, Presence
from tests.factories import make_device, make_ward
from tests.support.bridge import PumpClient
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_URL = "/__test_only__/axe.min.js"  # served by the test's route, never by PumpStream
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PHONE = {"width": 390, "height": 844}


def serious_violations(page) -> list[dict]:
    """Run axe-core on the page as it is now; the serious and critical violations it finds."""
    assert AXE.exists(), "axe-core is missing: `npm ci` installs it (a devDependency in package.json)"
    page.route(f"**{AXE_URL}", lambda route: route.fulfill(path=str(AXE), content_type="application/javascript"))
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE_URL)  # a same-origin src, so a Content-Security-Policy allows it
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA)
    return [violation for violation in result["violations"] if violation["impact"] in ("serious", "critical")]


def describe(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['impact']}: {v['id']} ({v['help']}) at {[node['target'] for node in v['nodes'][:3]]}"
        f" {v['nodes'][0].get('failureSummary', '')[:200]!r}"
        for v in violations
    )


def assert_accessible(page, where: str) -> None:
    found = serious_violations(page)
    assert not found, f"{where}: {len(found)} serious/critical WCAG 2.2 AA violations\n{describe(found)}"


@pytest.fixture
def busy_ward(running_pump):
    """Beside the infusing pump: stale, offline, never heard, a high alarm and an acknowledged medium one."""
    now = timezone.now()
    ward = make_ward("d4")
    make_device("BRW_A_STALE", ward=ward, bed="5", has_presence=False, last_seen_at=now - timedelta(seconds=50))
    make_device("BRW_A_OFF", ward=ward, bed="6", has_presence=True, presence=Presence.OFFLINE,
                last_seen_at=now - timedelta(minutes=5))  # fmt: skip
    make_device("BRW_A_NEVER", ward=ward, bed="7")
    alarmed = make_device("BRW_A_ALARM", ward=ward, bed="8", has_presence=True, presence=Presence.ONLINE,
                          last_seen_at=now)  # fmt: skip
    Alarm.objects.create(device=alarmed, type="occlusion", priority=AlarmPriority.HIGH, message="Downstream occlusion",
                         source=AlarmSource.DEVICE)  # fmt: skip
    acknowledged = make_device("BRW_A_ACK", ward=ward, bed="9", has_presence=True, presence=Presence.ONLINE,
                               last_seen_at=now)  # fmt: skip
    Alarm.objects.create(device=acknowledged, type="low_battery", priority=AlarmPriority.MEDIUM, message="Battery low",
                         source=AlarmSource.DEVICE, acknowledged_at=now)  # fmt: skip
    return running_pump


def test_sign_in_page(open_page, stack, artifacts_dir):
    page = open_page(None, "/accounts/login/")
    expect(page.get_by_label("Username")).to_be_visible()
    assert_accessible(page, "sign-in")
    screenshot(page, artifacts_dir, "a11y-login")


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["laptop", "phone"])
def test_overview_with_every_condition(open_page, busy_ward, artifacts_dir, viewport):
    page = open_page(busy_ward, "/", **({"viewport": viewport} if viewport else {}))
    expect(page.locator("#connection-banner")).to_have_text("Live")
    expect(page.locator('.pump-card[data-device-id="BRW_A_STALE"]')).to_have_attribute("data-condition", "stale")
    assert_accessible(page, "overview")
    screenshot(page, artifacts_dir, f"a11y-overview-{'phone' if viewport else 'laptop'}")


def test_monitor_with_an_alarm_and_the_stop_dialog(open_page, busy_ward, artifacts_dir):
    from devices.models import Device

    Alarm.objects.create(device=Device.objects.get(device_id="BRW_D_RUN"), type="air_in_line",
                         priority=AlarmPriority.HIGH, message="Air in line", source=AlarmSource.DEVICE)  # fmt: skip
    page = open_page(busy_ward, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    expect(page.locator('.alarm[data-priority="high"]')).to_be_visible()
    assert_accessible(page, "monitor")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    assert_accessible(page, "monitor with the Stop dialog open")
    page.keyboard.press("Escape")


def test_monitor_not_live(open_page, running_pump):
    """Its figures not known to be current (the socket lost, or before its snapshot) stay readable: they were faded to
    40 %, the labels 1.9:1 (a wall-screen test caught it by running its check before the page was live)."""
    from tests.browser.test_monitor_not_live_says_no_alarms import LOSE_THE_SOCKET

    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    page.evaluate(LOSE_THE_SOCKET)
    expect(page.locator("#monitor")).to_have_class(re.compile(r"\bvalues-stale\b"), timeout=10_000)
    assert_accessible(page, "monitor not live")


def test_start_wizard_every_step(open_page, busy_ward, artifacts_dir):
    page = open_page(busy_ward, "/devices/BRW_A_ALARM/start/")
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
    assert_accessible(page, "wizard step 1 (patient)")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_role("button", name="Next: review").click()  # errors shown
    expect(page.locator('[data-error-for="drug"]')).not_to_be_empty()
    assert_accessible(page, "wizard step 2 (infusion) with errors")
    page.get_by_label("Drug", exact=True).fill("Saline 0.9%")
    page.get_by_label("Rate (mL/h)").fill("120")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.get_by_role("button", name="Next: review").click()
    expect(page.locator("#review")).to_contain_text("Saline 0.9%")
    assert_accessible(page, "wizard step 3 (review)")
    screenshot(page, artifacts_dir, "a11y-wizard-review")


def test_skip_link_favicon_and_alarm_announcement(open_page, stack, busy_ward, artifacts_dir):
    page = open_page(busy_ward, "/")
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    page.reload()
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip, "the first Tab reaches the skip link").to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(stack["url"] + icon).ok, f"the favicon {icon} is not served"
    assert page.request.get(stack["url"] + "/favicon.ico").ok, "/favicon.ico answers 404 (the admin asks for it)"
    assert not missing, f"404s while loading the overview: {missing}"
    announcer = page.locator("#alarm-announcer")
    expect(announcer).to_have_attribute("aria-live", "assertive")
    expect(announcer, "alarms already shown when the page opened are not news").to_be_empty()
    pump = PumpClient(stack["broker"].url, "BRW_D_RUN")
    try:
        pump.publish("error", {"type": "occlusion", "severity": "critical", "message": "Line blocked"})
        expect(announcer).to_contain_text("High alarm, bed 4: Line blocked", timeout=5_000)
        page.evaluate("document.getElementById('alarm-announcer').textContent = ''")
        summaries = int(page.locator("body").get_attribute("data-summaries") or 0)
        pump.publish("error", {"type": "occlusion", "severity": "critical", "message": "Line blocked"})  # a repeat
        page.wait_for_function(f"Number(document.body.dataset.summaries ?? 0) > {summaries}", timeout=5_000)
        page.wait_for_timeout(500)
        expect(announcer, "a repeat (ward:alarm, then the summary) is not a new alert: not spoken").to_be_empty()
    finally:
        pump.close()
    page.evaluate("document.getElementById('alarm-announcer').textContent = ''")
    occlusion = Alarm.objects.get(device__device_id="BRW_D_RUN", type="occlusion")
    alarm_acknowledge(alarm_id=occlusion.pk, user=busy_ward)
    others = Alarm.objects.exclude(pk=occlusion.pk).values_list("pk", flat=True)
    assert alarms_remind(now=timezone.now() + timedelta(hours=1), exclude=list(others)) == 1, "it alone is reminded"
    expect(announcer, "a reminder alerts again: it is spoken again (review 6)").to_contain_text(
        "High alarm, bed 4: Line blocked", timeout=5_000
    )


WALL = {"width": 1920, "height": 1080}


@pytest.mark.parametrize("viewport", [PHONE, None, WALL], ids=["phone", "laptop", "wall"])
def test_station_banners_silence_bar_and_technical_alarm(open_page, busy_ward, artifacts_dir, viewport, request):
    """The station's own surfaces, each shown: the alarm banner and list, the ward's silence bar and the
    full-width technical alarm (switched on through the page's station object: its colours are what is checked)."""
    name = request.node.callspec.id
    page = open_page(busy_ward, "/", **({"viewport": viewport} if viewport else {}))
    expect(page.locator("#connection-banner")).to_have_text("Live")
    expect(page.locator("#station-alarm-banner")).to_be_visible()
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    assert_accessible(page, f"station with a high alarm at {name}")
    page.get_by_role("button", name="Silence the ward 2 min").click()
    expect(page.locator("#station-silence")).to_be_visible()
    page.evaluate("window.pumpstreamStation.setProblem('degraded', true)")
    expect(page.locator("#station-technical-alarm")).to_be_visible()
    assert_accessible(page, f"station silenced, with its technical alarm, at {name}")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the station's banners make the page {overflow} px wider than the screen at {name}"
    screenshot(page, artifacts_dir, f"a11y-station-{name}")


@pytest.mark.parametrize("viewport", [PHONE, WALL], ids=["phone", "wall"])
def test_monitor_at_phone_and_wall(open_page, busy_ward, artifacts_dir, viewport, request):
    """With an alarm (its Acknowledge and Resolve buttons) and the resolve dialog open, nothing runs off a phone."""
    from django.contrib.auth.models import Permission

    from devices.models import Device

    busy_ward.user_permissions.add(Permission.objects.get(codename="resolve_alarm"))
    Alarm.objects.create(device=Device.objects.get(device_id="BRW_D_RUN"), type="confirmed_late",
                         priority=AlarmPriority.MEDIUM, message="Late", source=AlarmSource.SERVER)  # fmt: skip
    page = open_page(busy_ward, "/devices/BRW_D_RUN/", viewport=viewport)
    expect(page.locator("#mon-session")).to_have_text("Running")
    expect(page.get_by_role("button", name="Acknowledge")).to_be_in_viewport()
    assert_accessible(page, f"monitor at {request.node.callspec.id}")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the monitor with an alarm is {overflow} px wider than the screen"
    page.get_by_role("button", name="Resolve…").click()
    expect(page.locator("#resolve-dialog")).to_be_visible()
    box = page.locator("#resolve-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], f"the resolve dialog runs off: {box}"
    assert_accessible(page, f"monitor's resolve dialog at {request.node.callspec.id}")
    page.keyboard.press("Escape")
    expect(page.locator("#resolve-dialog")).to_be_hidden()
    screenshot(page, artifacts_dir, f"a11y-monitor-{request.node.callspec.id}")
