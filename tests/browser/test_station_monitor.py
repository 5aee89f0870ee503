"""The monitor's chart and log: volume from 0 at the session's start to the planned volume, ordered against
delivered, axis times counted from the start; the event log in a clinician's words with who did what."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.bridge import wait_until
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ELAPSED = re.compile(r"^(\d+ s|\d+ min|\d+ h \d\d)$")


def test_chart_runs_from_zero_to_the_planned_volume_with_times_from_the_start(open_page, running_pump, artifacts_dir):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    expect(page.locator(".chart-box")).to_be_visible()
    wait_until(lambda: len(page.evaluate("window.pumpstreamMonitor.chart.series().delivered")) >= 3, timeout=15,
               message="the delivered line never grew from live progress")  # fmt: skip
    series = page.evaluate("window.pumpstreamMonitor.chart.series()")
    assert series["delivered"][0] == {"x": 0, "y": 0}, (
        f"delivered must start at 0 mL at 0 min: {series['delivered'][:2]}"
    )
    assert series["ordered"] == [{"x": 0, "y": 0}, {"x": 100, "y": 100}], f"ordered line: {series['ordered']}"
    page.wait_for_timeout(1_200)  # the chart redraws once a second
    scales = page.evaluate(
        """() => { const c = window.pumpstreamMonitor.chart.chart;
                   const labels = c.scales.x.ticks.map(t => t.label);
                   return { yMax: c.scales.y.max, xMin: c.scales.x.min, labels }; }"""
    )
    assert scales["yMax"] >= 100, f"the y axis must reach the planned 100 mL, not what was delivered: {scales}"
    assert scales["xMin"] == 0 and scales["labels"][0] == "0 min", f"axis times must count from the start: {scales}"
    assert all(ELAPSED.match(label) for label in scales["labels"]), f"axis labels: {scales['labels']}"
    screenshot(page, artifacts_dir, "monitor-chart-and-log")


def test_event_log_speaks_clinically_and_names_who(open_page, running_pump, artifacts_dir):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    log = page.locator("#event-list")
    expect(log).to_contain_text("dialog-nurse started Heparin at 60.0 mL/h, 100 mL")
    expect(log).to_contain_text("The pump confirmed: infusion running")
    page.get_by_role("button", name="Pause", exact=True).click()
    page.locator("#confirm-reason").fill("line check")
    page.keyboard.press("Enter")
    expect(log).to_contain_text("dialog-nurse asked the pump to pause (line check)", timeout=10_000)
    expect(log).to_contain_text("Infusion paused", timeout=15_000)
    text = log.inner_text()
    for developer_word in ("mqtt.", "command.", "session.", "received_start_command", "_"):
        assert developer_word not in text, f"the log speaks developer ({developer_word!r}):\n{text}"
