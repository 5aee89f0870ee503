"""Every command ends (done, failed, expired, superseded) in bounded time; one intent is one command; the page
says who did what. Through the real broker, bridge and Daphne (COMMAND_EXPIRY_S 10 s, confirmation 6 s).

On the old code a START, and a PAUSE to a pump that never answered, stayed `sent` for ever; five STOPs in a
row were five commands; a remote Pause or Stop read "at the pump" and a stopped infusion still showed its rate.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Command, Device, InfusionSession
from devices.services.requests import infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, Connectivity, SessionStatus
from realtime.sio.snapshot import read_snapshot
from tests.clinical.scenario import active_alarm, commands_of, legacy_step, legacy_steps, published, replay, wait_status
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import wait_until
from tests.support.browser import screenshot
from tests.support.processes import subprocess_env
from tests.support.sio import BrowserSession

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ENV = subprocess_env()
COMMAND_S = float(ENV["COMMAND_EXPIRY_S"])
START_S = float(ENV["CONFIRMATION_TIMEOUT_S"]) + 10


def confirmed(pump, device_id: str, **device_fields) -> InfusionSession:
    make_device(device_id, **device_fields)
    session = infusion_start(device_id=device_id, order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    return wait_status(session.infusion_id, SessionStatus.RUNNING)


def test_a_pause_the_pump_never_acts_on_fails_in_time_and_says_act_at_the_pump(
    clinical_bridge, clinical_pump, settings
):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "COMMAND_EXPIRY_S": COMMAND_S}  # queued here, with the bridge's
    pump = clinical_pump("CLN_CMD_DEAF")
    session = confirmed(pump, "CLN_CMD_DEAF")
    pause = infusion_request(device_id="CLN_CMD_DEAF", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id)
    wait_until(lambda: published(pump, "PAUSE_INFUSION"), message="PAUSE never reached the pump")
    assert published(pump, "PAUSE_INFUSION")[0]["payload"]["infusionId"] == session.infusion_id
    ended = wait_until(lambda: Command.objects.filter(pk=pause.pk, state=CommandState.FAILED).first(),
                       timeout=COMMAND_S + 5, message="a PAUSE the pump never acted on did not end failed")  # fmt: skip
    assert (ended.ended_at - ended.created_at).total_seconds() <= COMMAND_S + 2, "ended within its deadline"
    alarm = active_alarm("CLN_CMD_DEAF", "command_not_carried_out")
    assert alarm is not None and alarm.priority == "high" and "act at the pump" in alarm.message
    assert not [c for c in read_snapshot("CLN_CMD_DEAF").changes if c.event == "device:command"], (
        "an ended command is not pending in the snapshot"
    )
    pump.publish("status", {"status": "paused"})  # a nurse paused it at the pump: nobody needs to act any more
    wait_until(lambda: active_alarm("CLN_CMD_DEAF", "command_not_carried_out") is None,
               message="command_not_carried_out did not clear when the pump paused")  # fmt: skip


def test_a_start_to_a_silent_pump_is_superseded_when_its_session_times_out(clinical_bridge, clinical_pump):
    clinical_pump("CLN_CMD_START")
    make_device("CLN_CMD_START")
    session = infusion_start(device_id="CLN_CMD_START", order=make_order())
    wait_status(session.infusion_id, SessionStatus.TIMED_OUT, timeout=START_S)
    start = commands_of("CLN_CMD_START", CommandKind.START_INFUSION)[0]
    assert start.state == CommandState.SUPERSEDED, f"the START of a timed-out session ended {start.state}"
    assert (start.ended_at - start.created_at).total_seconds() <= START_S
    stop = commands_of("CLN_CMD_START", CommandKind.STOP_INFUSION)[0]
    wait_until(lambda: Command.objects.get(pk=stop.pk).state in (CommandState.FAILED, CommandState.DONE),
               timeout=COMMAND_S + 5, message="the STOP after the time-out never ended")  # fmt: skip


def test_a_command_to_an_offline_pump_is_kept_and_done_when_it_comes_back_and_acts(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_CMD_AWAY")
    pump.publish("status", {"status": "online"})
    session = confirmed(pump, "CLN_CMD_AWAY", has_presence=True)
    pump.publish("status", {"status": "offline"})  # its Last Will
    wait_until(lambda: InfusionSession.objects.get(pk=session.pk).device.presence == "offline", message="not offline")
    pause = infusion_request(device_id="CLN_CMD_AWAY", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id)
    assert pause.pump_connectivity == "offline", "the record keeps that the pump was offline when asked"
    pump.publish("status", {"status": "online"})
    wait_until(lambda: published(pump, "PAUSE_INFUSION"), message="PAUSE never reached the pump")  # what it acts on
    pump.publish("status", {"status": "paused"})
    wait_until(lambda: Command.objects.get(pk=pause.pk).state == CommandState.DONE,
               message="the pump came back and paused, but the command did not end done")  # fmt: skip
    assert wait_status(session.infusion_id, SessionStatus.PAUSED).status_reason == "paused remotely by the server"


def test_repeated_requests_are_one_command(clinical_bridge, clinical_pump, daphne_server):
    ward = make_ward("cln-repeat")
    pump = clinical_pump("CLN_CMD_TWICE")
    shown = confirmed(pump, "CLN_CMD_TWICE", ward=ward).infusion_id
    make_user("twicenurse", ward=ward)
    browser = BrowserSession(daphne_server.url, "twicenurse")
    path = "/api/devices/CLN_CMD_TWICE/commands/"
    for _ in range(2):  # a double click: the page sends the same key
        browser.post(path, {"command": "pause", "idempotencyKey": "click-1", "infusionId": shown,
                            "askedAt": timezone.now().isoformat()}, expect=(202,))  # fmt: skip
    again = {"command": "pause", "idempotencyKey": "retry-2", "infusionId": shown,
             "askedAt": timezone.now().isoformat()}  # fmt: skip
    browser.post(path, again, expect=(202,))  # the same intent again
    assert len(commands_of("CLN_CMD_TWICE", CommandKind.PAUSE_INFUSION)) == 1, "a repeated PAUSE queued another"
    # The pump pauses once it has the command (had it paused first, the evidence would end the PAUSE unsent).
    wait_until(lambda: published(pump, "PAUSE_INFUSION"), message="PAUSE never reached the pump")
    pump.publish("status", {"status": "paused"})
    wait_until(lambda: commands_of("CLN_CMD_TWICE", CommandKind.PAUSE_INFUSION)[0].state == CommandState.DONE,
               message="PAUSE not done")  # fmt: skip
    for _ in range(5):
        browser.post(path, {"command": "stop", "infusionId": shown, "askedAt": timezone.now().isoformat()},
                     expect=(202,))  # fmt: skip
    assert len(commands_of("CLN_CMD_TWICE", CommandKind.STOP_INFUSION)) == 1, "five STOPs in a row queued several"
    wait_until(lambda: len(published(pump, "STOP_INFUSION")) == 1, message="STOP not published")
    assert len(published(pump, "PAUSE_INFUSION")) == 1


def test_original_firmware_pause_and_resume_end_done_and_say_remote(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_CMD_LEG")
    make_device("CLN_CMD_LEG")
    session = infusion_start(device_id="CLN_CMD_LEG", order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    steps = legacy_steps("infusion", session.infusion_id, "CLN_CMD_LEG")
    replay(pump, legacy_step(steps, "/status", status="received_start_command"), legacy_step(steps, "/infusion"))
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    pause = infusion_request(device_id="CLN_CMD_LEG", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id)
    wait_until(lambda: published(pump, "PAUSE_INFUSION"), message="PAUSE never reached the pump")
    replay(pump, legacy_step(steps, "/status", status="paused"))
    paused = wait_status(session.infusion_id, SessionStatus.PAUSED)
    assert paused.status_reason == "paused remotely by the server", paused.status_reason
    assert Command.objects.get(pk=pause.pk).state == CommandState.DONE
    pump.publish("infusion", b"", retain=True)


def test_a_remote_stop_shows_stopped_by_whom_and_no_live_rate(
    clinical_bridge, clinical_pump, clinical_page, artifacts_dir
):
    ward = make_ward("cln-stop")
    pump = clinical_pump("CLN_CMD_STOP")
    session = confirmed(pump, "CLN_CMD_STOP", ward=ward, bed="4")
    progress = {"flowRate": 2.0, "deliveredVolumeMl": 11.0, "volumeRemainingMl": 19.0, "timeRemainingMin": 9.5}
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, **progress})
    nurse = make_user("stopnurse", ward=ward)
    page = clinical_page(nurse, "/devices/CLN_CMD_STOP/")
    expect(page.locator("#mon-rate")).to_have_text("120.0 mL/h")
    page.get_by_role("button", name="Pause").click()
    page.locator("#confirm-ok").click()
    wait_until(lambda: published(pump, "PAUSE_INFUSION"), message="the page's Pause never reached the pump")
    pump.publish("status", {"status": "paused"})
    expect(page.locator("#mon-drug")).to_contain_text("paused remotely by stopnurse", timeout=10_000)
    expect(page.locator("#mon-rate")).to_have_text("Paused")
    expect(page.locator("#mon-time-left")).to_have_text("Paused")
    page.get_by_role("button", name="Stop").click()
    page.locator("#confirm-ok").click()
    wait_until(lambda: published(pump, "STOP_INFUSION"), message="the page's Stop never reached the pump")
    assert published(pump, "STOP_INFUSION")[0]["payload"]["infusionId"] == session.infusion_id
    pump.publish("status", {"status": "stopped"})
    expect(page.locator("#mon-session")).to_have_text("Stopped", timeout=10_000)
    expect(page.locator("#mon-drug")).to_contain_text("stopped remotely by stopnurse")
    expect(page.locator("#mon-drug")).not_to_contain_text("at the pump")
    expect(page.locator("#mon-rate")).to_have_text("Stopped")
    expect(page.locator("#mon-time-left")).to_have_text("Stopped")
    expect(page.locator("#command-list li[data-command='STOP_INFUSION']")).to_contain_text("done")
    screenshot(page, artifacts_dir, "clinical-stopped-remotely")
    stopped = InfusionSession.objects.get(pk=session.pk)
    assert stopped.status == SessionStatus.STOPPED and stopped.status_reason == "stopped remotely by stopnurse"


def test_the_page_warns_before_a_command_to_a_stale_pump(clinical_bridge, clinical_pump, clinical_page):
    ward = make_ward("cln-stale")
    pump = clinical_pump("CLN_CMD_STALE")
    confirmed(pump, "CLN_CMD_STALE", ward=ward)
    nurse = make_user("stalenurse", ward=ward)
    page = clinical_page(nurse, "/devices/CLN_CMD_STALE/")
    # stale on the server (no progress: silent), and so on the live page: a page not yet receiving reads its pumps
    # Stale too (review 36), and a Pause clicked then, the pump not yet stale, was rightly sent without the warning
    wait_until(lambda: Device.objects.get(device_id="CLN_CMD_STALE").connectivity() == Connectivity.STALE,
               timeout=15, message="the silent pump never turned stale")  # fmt: skip
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(page.locator("#mon-connectivity")).to_have_text("Stale", timeout=15_000)
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#confirm-text")).to_contain_text("WARNING: the pump is Stale")
    page.locator("#confirm-ok").click()
    command = wait_until(lambda: Command.objects.filter(device__device_id="CLN_CMD_STALE",
                                                        kind=CommandKind.PAUSE_INFUSION).first(),
                         message="the warned command was not queued")  # fmt: skip
    assert command.pump_connectivity == "stale" and command.created_by == nurse
    expect(page.locator("#command-list li[data-command='PAUSE_INFUSION']")).to_contain_text("pump was stale")


def test_a_stop_dialog_left_open_does_not_stop_an_infusion_started_since(clinical_bridge, clinical_pump, clinical_page):
    """Review 3: the dialog named Heparin; meanwhile Heparin completed and a colleague started Noradrenaline on the
    pump. Her click must not stop the Noradrenaline: nothing is sent, and the page says what is on the pump now."""
    ward = make_ward("cln-stale-stop")
    pump = clinical_pump("CLN_CMD_STALE")
    make_device("CLN_CMD_STALE", ward=ward)
    heparin = infusion_start(device_id="CLN_CMD_STALE", order=make_order(drug="Heparin"))
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": heparin.infusion_id, "confirmed": True})
    wait_status(heparin.infusion_id, SessionStatus.RUNNING)
    page = clinical_page(make_user("stalenurse", ward=ward), "/devices/CLN_CMD_STALE/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#confirm-text")).to_contain_text("Heparin")  # the dialog stays open
    pump.publish("completion", {"completed": True, "infusionId": heparin.infusion_id})
    wait_status(heparin.infusion_id, SessionStatus.COMPLETED)
    noradrenaline = infusion_start(device_id="CLN_CMD_STALE", order=make_order(drug="Noradrenaline"))
    wait_until(lambda: len(published(pump, "START_INFUSION")) == 2, message="the second START never reached the pump")
    pump.publish("infusion", {"infusionId": noradrenaline.infusion_id, "confirmed": True})
    wait_status(noradrenaline.infusion_id, SessionStatus.RUNNING)
    page.locator("#confirm-dialog").get_by_role("button", name="Stop infusion").click()
    expect(page.locator("#control-notice")).to_contain_text("Noradrenaline", timeout=10_000)
    assert not commands_of("CLN_CMD_STALE", CommandKind.STOP_INFUSION), "a Stop confirmed for Heparin was queued"
    assert InfusionSession.objects.get(pk=noradrenaline.pk).status == SessionStatus.RUNNING
