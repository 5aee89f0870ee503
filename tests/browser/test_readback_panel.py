"""The read-back panel says only what the pump reported for the run under way (the screen must never lie).

After fa6304c a restart voids what a confirmation verified: the resumed order reads UNVERIFIED until the pump
confirms again. But the panel's "Pump reports" column still showed the parameters confirmed before the restart (a
resumed order running 1200 mL/h read "Pump reports 120 mL/h" under "UNVERIFIED: the pump did not report…"), and a
mismatch found from the pump's progress showed an old confirmation, or "not reported", beside MISMATCH, never the
running rate that raised it; the waiting window said "The pump confirmed, but…" of a pump that never confirmed.
"""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from tests.browser.test_waiting_window_endings import offline, waiting_order
from tests.clinical.scenario import wait_status
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the orders end as the tests make them end, never by time-out
AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}


def reported(panel, row: str):
    """The "Pump reports" cell of a row of a read-back panel (Rate, Volume, Time, Bolus)."""
    return panel.locator("tr", has_text=row).locator("td").nth(2)


def read_back_is(infusion_id: str, verdict: str) -> None:
    wait_until(lambda: InfusionSession.objects.get(infusion_id=infusion_id).read_back == verdict,
               message=f"{infusion_id}'s read-back never became {verdict}")  # fmt: skip


def confirmed_on_a_monitor(opener, stack_parts: dict, device_id: str, ward_code: str):
    """An order on `device_id` (boot-1, seq 1-2) confirmed as ordered, and its nurse's monitor open on it (`opener`:
    the `open_page` fixture; `stack_parts`: the `stack` fixture): (page, pump, infusion id). The caller closes the
    pump."""
    ward = make_ward(ward_code)
    make_device(device_id, ward=ward, bed="4", has_presence=True)
    nurse = make_user(f"{ward_code}-nurse", ward=ward)
    pump = PumpClient(stack_parts["broker"].url, device_id)
    pump.publish("status", {"status": "online", "bootId": "boot-1", "seq": 1})
    order = make_order(drug="Heparin", bolus_enabled=False, bolus_volume_ml=0.0)
    infusion_id = infusion_start(device_id=device_id, order=order, user=nurse).infusion_id
    pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": AS_ORDERED,
                              "bootId": "boot-1", "seq": 2})  # fmt: skip
    read_back_is(infusion_id, "match")
    return opener(nurse, f"/devices/{device_id}/"), pump, infusion_id


def test_the_monitor_never_shows_a_confirmation_from_before_a_restart_as_what_the_pump_runs(open_page, stack):
    page, pump, infusion_id = confirmed_on_a_monitor(open_page, stack, "RBP_RESUME", "rbp")
    try:
        panel = page.locator("#mon-readback")
        expect(panel).to_have_attribute("data-readback", "match")
        expect(reported(panel, "Rate")).to_have_text("120.000 mL/h")  # confirmed for this run: shown as reported

        pump.publish("status", {"status": "online", "bootId": "boot-2", "seq": 1})  # it restarted mid-infusion
        wait_status(infusion_id, SessionStatus.INTERRUPTED)
        pump.publish("status", {"status": "running", "infusionId": infusion_id, "bootId": "boot-2", "seq": 2})
        wait_status(infusion_id, SessionStatus.RUNNING)  # resumed: its confirmation from before no longer counts
        expect(panel).to_have_attribute("data-readback", "unverified", timeout=10_000)
        for row in ("Rate", "Volume", "Time", "Bolus"):  # the confirmation from before the restart is not shown
            expect(reported(panel, row)).to_have_text("not reported since the restart")
        expect(panel.locator(".readback-note")).to_contain_text("restart")

        pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 20.0,
                                  "deliveredVolumeMl": 1.0, "volumeRemainingMl": 29.0, "bootId": "boot-2",
                                  "seq": 3})  # fmt: skip
        expect(panel).to_have_attribute("data-readback", "mismatch", timeout=10_000)
        expect(reported(panel, "Rate")).to_contain_text("1,200.000 mL/h")  # the rate that raised the alarm
        expect(reported(panel, "Rate")).to_contain_text("progress")
        expect(reported(panel, "Volume")).to_contain_text("not reported")
    finally:
        pump.close()


def test_the_monitor_never_says_parameters_match_beside_ten_times_the_confirmed_rate(open_page, stack):
    """Confirmed as ordered, then run at ten times the rate (changed at the pump's own screen): the monitor said
    "parameters match" beside the 1,200 mL/h of its own rate field, and no alarm (review 16)."""
    page, pump, infusion_id = confirmed_on_a_monitor(open_page, stack, "RBP_RATE", "rbr")
    try:
        for seq in range(3, 8):
            pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 20.0,
                                      "deliveredVolumeMl": seq * 0.3, "volumeRemainingMl": 30 - seq * 0.3,
                                      "bootId": "boot-1", "seq": seq})  # fmt: skip
        expect(page.locator("#mon-rate")).to_contain_text("1,200.0 mL/h", timeout=10_000)
        panel = page.locator("#mon-readback")
        expect(panel).to_have_attribute("data-readback", "mismatch", timeout=10_000)
        expect(reported(panel, "Rate")).to_contain_text("1,200.000 mL/h")
    finally:
        pump.close()


def test_the_monitor_never_says_parameters_match_beside_more_delivered_than_the_order(open_page, stack):
    """Confirmed as ordered (30 mL, no bolus), its rate field as ordered, and 40 mL reported delivered, still running:
    the panel said "parameters match" and nothing alarmed (review 19, finding 2); now MISMATCH, and why under it."""
    page, pump, infusion_id = confirmed_on_a_monitor(open_page, stack, "RBP_VOLUME", "rbv")
    try:
        pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 2.0,
                                  "deliveredVolumeMl": 40.0, "bootId": "boot-1", "seq": 3})  # fmt: skip
        panel = page.locator("#mon-readback")
        expect(panel).to_have_attribute("data-readback", "mismatch", timeout=10_000)
        expect(panel.locator(".readback-divergence")).to_contain_text(
            "the pump reports 40.00 mL delivered, more than the whole order (30.05 mL"
        )
        expect(reported(panel, "Rate")).to_contain_text("120.000 mL/h")
    finally:
        pump.close()


def test_the_waiting_window_says_a_mismatch_seen_in_progress_as_such(open_page, stack):
    """Running on its `started` report (unverified), then progress at 10x the order: the window followed it to
    MISMATCH saying "The pump confirmed, but…", with "not reported" beside every ordered value."""
    page, pump, infusion_id = waiting_order(open_page, stack, "RBP_WAIT", "rbpw")
    try:
        pump.publish("status", {"status": "started", "infusionId": infusion_id, "bootId": "boot-1", "seq": 3})
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "unverified", timeout=5_000)
        pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 20.0,
                                  "deliveredVolumeMl": 0.3, "volumeRemainingMl": 29.7, "bootId": "boot-1",
                                  "seq": 4})  # fmt: skip
        expect(modal).to_have_attribute("data-outcome", "mismatch", timeout=5_000)
        message = page.locator("#waiting-message")
        expect(message).not_to_contain_text("confirmed")
        expect(message).to_contain_text("1,200.0 mL/h")
        panel = page.locator("#waiting-readback")
        expect(panel).to_have_attribute("data-readback", "mismatch")
        expect(reported(panel, "Rate")).to_contain_text("1,200.000 mL/h")
        expect(reported(panel, "Volume")).to_contain_text("not reported")
    finally:
        pump.close()


def test_the_waiting_window_does_not_show_what_a_resumed_order_confirmed_before_the_restart(open_page, stack):
    """Confirmed as ordered and cut off by a restart while the page was offline (the window ends "ran, interrupted"),
    then resumed by the pump: the window follows it to UNVERIFIED, and its panel showed the old confirmation."""
    page, pump, infusion_id = waiting_order(open_page, stack, "RBP_WRES", "rbpr")
    try:
        with offline(page):
            pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": AS_ORDERED,
                                      "bootId": "boot-1", "seq": 3})  # fmt: skip
            wait_status(infusion_id, SessionStatus.RUNNING)
            pump.publish("status", {"status": "idle", "bootId": "boot-2", "seq": 1})  # restarted mid-infusion
            wait_status(infusion_id, SessionStatus.INTERRUPTED)
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "ranInterrupted", timeout=15_000)
        pump.publish("status", {"status": "running", "infusionId": infusion_id, "bootId": "boot-2", "seq": 2})
        expect(modal).to_have_attribute("data-outcome", "unverified", timeout=5_000)
        expect(page.locator("#waiting-message")).to_contain_text("The pump restarted and runs this order again")
        panel = page.locator("#waiting-readback")
        for row in ("Rate", "Volume", "Time", "Bolus"):
            expect(reported(panel, row)).to_have_text("not reported since the restart")
    finally:
        pump.close()


def test_the_waiting_window_says_parameters_that_could_not_be_read_as_such(open_page, stack):
    """Confirmed with its rate as text (read without `parameters`, review 19): the window and its panel said "did not
    report the parameters it runs" and "not reported" in every row, of a pump that reported them, unreadably."""
    page, pump, infusion_id = waiting_order(open_page, stack, "RBP_UNREAD", "rbpu")
    try:
        pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True,
                                  "parameters": {**AS_ORDERED, "flowRateMlMin": "2.0"}, "bootId": "boot-1",
                                  "seq": 3})  # fmt: skip
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "unverified", timeout=5_000)
        message = page.locator("#waiting-message")
        expect(message).to_contain_text("the parameters it reported could not be read")
        expect(message).not_to_contain_text("did not report")
        panel = page.locator("#waiting-readback")
        expect(panel.locator(".readback-verdict")).to_have_text(
            "UNVERIFIED: the parameters the pump reported could not be read; check its screen"
        )
        for row in ("Rate", "Volume", "Time", "Bolus"):
            expect(reported(panel, row)).to_have_text("reported, could not be read")
    finally:
        pump.close()


def test_the_monitor_says_when_the_pump_reports_the_order_s_rate_again(open_page, stack):
    """Run at ten times the rate, then corrected at the pump: the Rate row kept "1,200.000 mL/h (seen in its progress
    at …)" for the rest of the infusion. It now also says the order's rate is reported again; MISMATCH stays (the
    alarm stands until resolved), review 19, lead 4."""
    page, pump, infusion_id = confirmed_on_a_monitor(open_page, stack, "RBP_FIXED", "rbf")
    try:
        for seq, rate in enumerate([20.0, 20.0, 2.0], start=3):
            pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": rate,
                                      "deliveredVolumeMl": seq * 0.3, "volumeRemainingMl": 30 - seq * 0.3,
                                      "bootId": "boot-1", "seq": seq})  # fmt: skip
        panel = page.locator("#mon-readback")
        expect(reported(panel, "Rate")).to_contain_text("now reports the order's rate", timeout=10_000)
        expect(reported(panel, "Rate")).to_contain_text("1,200.000 mL/h (seen in its progress")
        expect(panel).to_have_attribute("data-readback", "mismatch")
    finally:
        pump.close()


def test_the_monitor_shows_the_rate_the_pump_received_with_the_order_beside_its_confirmation(open_page, stack):
    """The pump said it received the order at 1,200 mL/h, then confirmed 120 mL/h: MISMATCH (its reports disagree),
    the confirmation's rate in the Rate row and the received one in a row of its own, never shown as confirmed."""
    ward = make_ward("rbrc")
    make_device("RBP_RECV", ward=ward, bed="4", has_presence=True)
    nurse = make_user("rbrc-nurse", ward=ward)
    pump = PumpClient(stack["broker"].url, "RBP_RECV")
    try:
        pump.publish("status", {"status": "online", "bootId": "boot-1", "seq": 1})
        order = make_order(drug="Heparin", bolus_enabled=False, bolus_volume_ml=0.0)
        infusion_id = infusion_start(device_id="RBP_RECV", order=order, user=nurse).infusion_id
        pump.publish("status", {"status": "received_start_command", "infusionId": infusion_id, "bootId": "boot-1",
                                "seq": 2, "currentInfusion": {**AS_ORDERED, "flowRateMlMin": 20.0}})  # fmt: skip
        pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": AS_ORDERED,
                                  "bootId": "boot-1", "seq": 3})  # fmt: skip
        read_back_is(infusion_id, "mismatch")
        page = open_page(nurse, "/devices/RBP_RECV/")
        panel = page.locator("#mon-readback")
        expect(panel).to_have_attribute("data-readback", "mismatch", timeout=10_000)
        expect(reported(panel, "Rate")).to_have_text("120.000 mL/h")
        expect(reported(panel, "Received")).to_contain_text("1,200.000 mL/h (when the order arrived")
        expect(reported(panel, "Received")).to_contain_text("no confirmation")
    finally:
        pump.close()
