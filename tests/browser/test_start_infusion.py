"""The start wizard end to end: confirm → monitor, the timeout path with Retry and Cancel, a legacy pump's rejection."""

import re
import time

import pytest
from playwright.sync_api import expect

from devices.models import Command, Device, InfusionSession
from devices.states import CommandKind, SessionStatus
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.browser import TABLET, screenshot
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def simulator(stack, artifacts_dir):
    started: list[SimulatorProcess] = []

    def start(*args: str, interactive: bool = False) -> SimulatorProcess:
        process = SimulatorProcess(stack["broker"].url, *args, log_dir=artifacts_dir).start(interactive=interactive)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def open_wizard(open_page, device_id: str, **kwargs):
    ward = make_ward("icu")
    make_device(device_id, ward=ward, bed="5", **kwargs)
    page = open_page(make_user("nurse", ward=ward), f"/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    return page


def fill_order(page, *, skip_patient: bool = False) -> None:
    """Patient, then rate and volume (the time is filled in), a bolus, then "start" on the review."""
    if skip_patient:
        page.get_by_role("button", name="Skip patient details").click()
        expect(page.locator("#skip-warning")).to_be_visible()
    else:
        page.get_by_label("Name", exact=True).fill("Ada Lovelace")
        page.get_by_role("button", name="Next: infusion").click()
    page.get_by_label("Drug", exact=True).fill("Saline 0.9%")  # on the infusion step: a skip never skips it
    page.get_by_label("Rate (mL/h)").fill("120")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    expect(page.get_by_label("Time (min)")).to_have_value("15")
    page.get_by_label("Bolus", exact=True).check()
    page.get_by_label("Bolus volume (mL)").fill("40")
    page.get_by_role("button", name="Next: review").click()
    expect(page.locator('[data-error-for="bolus_volume_ml"]')).to_contain_text("at most 15 mL (half the volume)")
    page.get_by_label("Bolus volume (mL)").fill("5")
    page.get_by_role("button", name="Next: review").click()
    expect(page.locator("#review")).to_contain_text("120.0 mL/h")
    confirm_start(page)


def confirm_start(page) -> None:
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()
    expect(page.locator("#waiting-modal")).to_be_visible()


def test_start_wait_confirm_then_monitor_on_the_same_page(open_page, simulator, artifacts_dir):
    page = open_wizard(open_page, "BRW_AUTO", has_presence=True)  # registered before the pump speaks
    sim = simulator("BRW_AUTO", "--auto", "--speed", "30", "--confirm-delay", "2")
    wait_until(lambda: page.locator("#mon-connectivity").text_content() == "Online", timeout=15,
               message=f"the simulated pump never came online:\n{sim.log_tail()}")  # fmt: skip
    fill_order(page)
    submitted = time.monotonic()
    expect(page.locator("#waiting-countdown")).to_contain_text(" s")
    expect(page.locator('[data-wait="delivered"]')).to_have_attribute("data-done", "done")
    screenshot(page, artifacts_dir, "start-waiting-modal")
    expect(page.locator("#monitor")).to_be_visible(timeout=15_000)
    print(f"start submitted → monitor shown after {time.monotonic() - submitted:.1f} s (the pump confirms after 2 s)")
    expect(page.locator("#waiting-modal")).to_be_hidden()
    assert page.url.endswith("/devices/BRW_AUTO/"), "monitoring begins on the same page, at the monitor's address"
    expect(page.locator("#mon-session")).to_have_text("Running")
    expect(page.locator("#mon-drug")).to_have_text("Saline 0.9%")
    expect(page.locator("#mon-ordered")).to_contain_text("120.0 mL/h")
    expect(page.locator("#mon-infused")).not_to_have_text("—", timeout=10_000)
    expect(page.locator("#mon-rate")).to_contain_text("mL/h")
    session = InfusionSession.objects.get(device__device_id="BRW_AUTO")
    assert session.flow_rate_ml_min == 2.0 and session.started_by.username == "nurse"
    wait_until(lambda: page.evaluate("window.pumpstreamMonitor.chart.points.length") >= 3, timeout=10,
               message="the chart of delivered volume never grew from live progress")  # fmt: skip
    page.set_viewport_size(TABLET)
    screenshot(page, artifacts_dir, "monitor-running-tablet")
    for verb, shown in (("Pause", "Paused"), ("Resume", "Running"), ("Stop", "Stopped")):
        command_and_watch(page, verb, shown)
    screenshot(page, artifacts_dir, "monitor-stopped")
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.STOPPED


def command_and_watch(page, verb: str, shown: str) -> None:
    """Click a control, confirm in the dialog, then see the command reach the pump and the session follow."""
    page.get_by_role("button", name=verb, exact=True).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-title")).to_have_text(f"{verb} the infusion?")
    dialog.get_by_role("button", name=f"{verb} infusion").click()
    expect(page.locator("#mon-session")).to_have_text(shown, timeout=15_000)
    command = {"Pause": "PAUSE_INFUSION", "Resume": "RESUME_INFUSION", "Stop": "STOP_INFUSION"}[verb]
    expect(page.locator(f'#command-list li[data-command="{command}"]').first).to_have_attribute(
        "data-state", re.compile("delivered|done"), timeout=15_000
    )


def test_timeout_then_retry_then_cancel(open_page, stack, artifacts_dir):
    pump = PumpClient(stack["broker"].url, "BRW_MUTE")  # hears commands, never answers
    try:
        page = open_wizard(open_page, "BRW_MUTE", has_presence=True)
        pump.publish("status", {"status": "online"}, retain=False)
        fill_order(page, skip_patient=True)
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "timeout", timeout=20_000)
        expect(page.locator("#waiting-message")).to_contain_text("did not confirm in time")
        screenshot(page, artifacts_dir, "start-timeout")
        session = InfusionSession.objects.get(device__device_id="BRW_MUTE")
        assert session.status == SessionStatus.TIMED_OUT and session.patient_skipped
        page.get_by_role("button", name="Retry").click()
        expect(page.locator("#review")).to_contain_text("Skipped")
        confirm_start(page)
        expect(modal).to_have_attribute("data-outcome", "waiting")
        page.get_by_role("button", name="Cancel").click()
        expect(modal).to_have_attribute("data-outcome", "cancelled")
        expect(page.locator("#waiting-message")).to_contain_text("cancelled")
        expect(page.locator("#waiting-message")).to_contain_text("clear its screen")  # its STOP (the reason says so)
        wait_until(lambda: any(c.get("command") == "STOP_INFUSION" for c in pump.commands), timeout=10,
                   message="a cancelled start must tell the pump to stop")  # fmt: skip
    finally:
        pump.close()


def test_waiting_countdown_runs_from_the_starts_publication(open_page, stack):
    """A START published seconds after the order (the bridge stalled) gets the whole confirmation time on screen,
    as on the server: the countdown restarts from its publication (sentAt), never from the order's creation."""
    pump = PumpClient(stack["broker"].url, "BRW_LATE")  # hears commands, never answers
    bridge = stack["bridge"]
    try:
        page = open_wizard(open_page, "BRW_LATE", has_presence=True)
        pump.publish("status", {"status": "online"}, retain=False)
        bridge.pause_idle()  # the START waits unpublished, as through a broker outage
        try:
            fill_order(page, skip_patient=True)
            countdown = page.locator("#waiting-countdown")
            expect(countdown).to_have_text(re.compile(r"^\d s$"))  # counting from the order meanwhile, no NaN
            expect(page.locator('[data-wait="sent"]')).to_have_attribute("data-done", "active")
            time.sleep(5)  # of the 6 s confirmation time (tests/support/processes.py)
        finally:
            bridge.resume()
        expect(page.locator('[data-wait="sent"]')).to_have_attribute("data-done", "done", timeout=10_000)
        # Counted from the order it would read 1 s at most now, then "waiting for the server…"; counted from the
        # publication, 6 s down to 2 s for the 4 s after it (a slow run's page saw "sent" 2-3 s after it)
        expect(countdown).to_have_text(re.compile(r"^[2-6] s$"), timeout=2_000)
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "timeout", timeout=20_000)
        command = Command.objects.get(session__device__device_id="BRW_LATE", kind=CommandKind.START_INFUSION)
        session = InfusionSession.objects.get(device__device_id="BRW_LATE")
        assert (command.sent_at - session.created_at).total_seconds() >= 3.5, "the START was published late"
    finally:
        pump.close()


def test_a_start_published_before_the_reply_came_shows_sent_when_the_window_opens(open_page, stack):
    """The START is published (its device:command heard) before the page has the start's reply: the window opens
    with what the page heard meanwhile, not "waiting to be sent" (nor a countdown from the order) until the end."""
    pump = PumpClient(stack["broker"].url, "BRW_EARLY")  # hears commands, never answers
    try:
        page = open_wizard(open_page, "BRW_EARLY", has_presence=True)
        pump.publish("status", {"status": "online"}, retain=False)

        def reply_after_publication(route) -> None:
            response = route.fetch()
            wait_until(lambda: Command.objects.filter(session__device__device_id="BRW_EARLY",
                                                      sent_at__isnull=False).exists(),
                       timeout=10, message="the START was never published")  # fmt: skip
            time.sleep(1)  # its device:command reaches the page first
            route.fulfill(response=response)

        page.route("**/api/devices/*/infusions/", reply_after_publication)
        fill_order(page, skip_patient=True)
        expect(page.locator('[data-wait="sent"]')).to_have_attribute("data-done", "done", timeout=3_000)
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "cancelled")
    finally:
        pump.close()


def test_legacy_pump_rejects_the_start(open_page, simulator, artifacts_dir):
    # registered first: the original firmware says "online" once, at QoS 0, and then nothing while idle
    page = open_wizard(open_page, "BRW_LEGACY", has_presence=False)
    sim = simulator("BRW_LEGACY", "--legacy", interactive=True)
    # Its one "online" makes it Online for the heartbeat timeout (3 s here), then Stale while it idles in
    # silence: wait for what stays true once it spoke (heard), not for that window.
    wait_until(lambda: Device.objects.get(device_id="BRW_LEGACY").last_seen_at, timeout=20,
               message=f"the legacy pump never spoke:\n{sim.log_tail()}")  # fmt: skip
    expect(page.locator("#mon-last-heard")).to_contain_text("Last heard")
    fill_order(page)
    expect(page.locator('[data-wait="delivered"]')).to_have_attribute("data-done", "done", timeout=10_000)
    expect(page.locator('[data-wait="accept"]')).to_have_attribute("data-done", "active")
    sim.type("reject")
    modal = page.locator("#waiting-modal")
    expect(modal).to_have_attribute("data-outcome", "rejected", timeout=10_000)
    expect(page.locator("#waiting-message")).to_contain_text("rejected the infusion")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    screenshot(page, artifacts_dir, "start-rejected-legacy")
