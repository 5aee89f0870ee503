"""A Pause, Resume or Stop is carried out only as the nurse asked it, when she asked it (review 46, H1 and L3).

Through the real broker, bridge and Daphne (the page's HTTP request, signed in, with CSRF). A request held up in a
stalled network (Wi-Fi, a proxy) was queued whenever it arrived: a Resume held 20 s reached the pump after the nurse
had resumed, then paused, the infusion at its screen to fix the line, and resumed it into that line; the monitor then
named the arrival as the press. The page now sends when she pressed (`askedAt`, on the server's clock as it knows
it): a request arriving more than 5 s after it, or after which the pump reported a change, is refused, nothing sent,
and the refusal recorded under her name. A second nurse's identical Pause was answered with the first's and her press
never recorded: it is recorded now as joining the Pause under way, still one command to the pump.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Command, DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import CommandKind, SessionStatus
from tests.clinical.scenario import published, wait_status
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import wait_until
from tests.support.sio import BrowserSession

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def paused_infusion(pump, device_id: str, ward) -> InfusionSession:
    """An order on the pump, confirmed, then paused (by the nurse, at the pump)."""
    make_device(device_id, ward=ward, has_presence=True)
    pump.publish("status", {"status": "online"})
    session = infusion_start(device_id=device_id, order=make_order(drug="Noradrenaline"))
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    pump.publish("status", {"status": "paused", "infusionId": session.infusion_id})
    return wait_status(session.infusion_id, SessionStatus.PAUSED)


def asked(seconds_ago: float = 0.0) -> str:
    return (timezone.now() - timedelta(seconds=seconds_ago)).isoformat()


def refusals(device_id: str) -> list[DeviceEvent]:
    return list(DeviceEvent.objects.filter(device__device_id=device_id, kind="user.command_refused"))


@pytest.mark.parametrize("command", ["resume", "stop"])
def test_a_command_that_reaches_the_server_long_after_its_press_is_refused_and_recorded(
    command, clinical_bridge, clinical_pump, daphne_server
):
    ward = make_ward(f"held-{command}")
    device_id = f"CLN_HELD_{command.upper()}"
    pump = clinical_pump(device_id)
    session = paused_infusion(pump, device_id, ward)
    # paused a minute ago (as if), so that the press 20 s ago came after it: nothing changed at the pump since
    InfusionSession.objects.filter(pk=session.pk).update(status_changed_at=timezone.now() - timedelta(seconds=60))
    make_user(f"held-nurse-{command}", ward=ward)
    nurse = BrowserSession(daphne_server.url, f"held-nurse-{command}")
    status, body = nurse.answer(f"/api/devices/{device_id}/commands/", {
        "command": command, "infusionId": session.infusion_id, "idempotencyKey": "dialog-1", "askedAt": asked(20),
    })  # fmt: skip
    queued = list(Command.objects.filter(device__device_id=device_id).exclude(kind=CommandKind.START_INFUSION))
    assert not queued, (
        f"a {command} pressed 20 s before it reached the server (held in a stalled network) was queued "
        f"({[(c.kind, c.state) for c in queued]}, answer {status} {body}): the pump obeys a press made before "
        "whatever happened at it meanwhile"
    )
    assert status == 409 and body["code"] == "command_late", (status, body)
    assert "20 s after you pressed it" in body["message"] and "Look at the pump" in body["message"], body["message"]
    assert "network" in body["message"] and "slow" in body["message"] and "act there" in body["message"], (
        "review 47, L2: from about 5 s of delay every command is refused; the refusal must say the network is slow "
        f"and to act at the pump: {body['message']}"
    )
    refused = refusals(device_id)
    assert len(refused) == 1 and refused[0].user.username == f"held-nurse-{command}", refused
    assert refused[0].payload["refused"] == "command_late" and refused[0].payload["askedAt"], refused[0].payload
    time.sleep(1)  # the bridge's outbox ticks meanwhile: nothing reaches the pump
    assert not published(pump, "RESUME_INFUSION") and not published(pump, "STOP_INFUSION")
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED


def test_a_resume_pressed_before_the_nurse_acted_at_the_pump_is_refused(clinical_bridge, clinical_pump, daphne_server):
    """She presses Resume; before the request arrives she resumes at the pump, then pauses again to fix the line:
    the infusion is paused, as when she pressed, but not the same pause. The held Resume must not resume it."""
    ward = make_ward("held-change")
    pump = clinical_pump("CLN_HELD_CHANGE")
    session = paused_infusion(pump, "CLN_HELD_CHANGE", ward)
    make_user("change-nurse", ward=ward)
    nurse = BrowserSession(daphne_server.url, "change-nurse")
    pressed = asked()
    pump.publish("actions", {"action": "MANUAL_RESUME", "infusionId": session.infusion_id})
    pump.publish("status", {"status": "running", "infusionId": session.infusion_id})
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    pump.publish("actions", {"action": "MANUAL_PAUSE", "infusionId": session.infusion_id})
    pump.publish("status", {"status": "paused", "infusionId": session.infusion_id})
    wait_status(session.infusion_id, SessionStatus.PAUSED)
    status, body = nurse.answer("/api/devices/CLN_HELD_CHANGE/commands/", {
        "command": "resume", "infusionId": session.infusion_id, "idempotencyKey": "dialog-2", "askedAt": pressed,
    })  # fmt: skip
    resumes = list(Command.objects.filter(device__device_id="CLN_HELD_CHANGE", kind=CommandKind.RESUME_INFUSION))
    assert not resumes, (
        f"a Resume pressed before the pump was resumed and paused again at its screen was queued (answer {status} "
        f"{body}): it resumes a line she had just paused"
    )
    assert status == 409 and body["code"] == "pump_changed", (status, body)
    assert "after you pressed Resume" in body["message"], body["message"]
    assert refusals("CLN_HELD_CHANGE")[0].payload["refused"] == "pump_changed"


def test_a_request_without_its_press_time_is_refused_clearly(clinical_bridge, clinical_pump, daphne_server):
    """A page older than the server sends no `askedAt`: refused, saying to reload, never carried out unjudged."""
    ward = make_ward("held-old")
    pump = clinical_pump("CLN_HELD_OLD")
    session = paused_infusion(pump, "CLN_HELD_OLD", ward)
    make_user("old-page-nurse", ward=ward)
    nurse = BrowserSession(daphne_server.url, "old-page-nurse")
    status, body = nurse.answer("/api/devices/CLN_HELD_OLD/commands/", {
        "command": "resume", "infusionId": session.infusion_id, "idempotencyKey": "old-1",
    })  # fmt: skip
    assert status == 400, f"a request that does not say when she pressed was carried out unjudged: {status} {body}"
    assert (body["code"], body["field"]) == ("asked_at_required", "askedAt") and "Reload the page" in body["message"]
    assert not Command.objects.filter(device__device_id="CLN_HELD_OLD", kind=CommandKind.RESUME_INFUSION).exists()
    status, body = nurse.answer("/api/devices/CLN_HELD_OLD/commands/", {
        "command": "resume", "infusionId": session.infusion_id, "idempotencyKey": "old-2", "askedAt": "yesterday",
    })  # fmt: skip
    assert (status, body["code"], body["field"]) == (400, "invalid_command", "askedAt"), (status, body)
    status, body = nurse.answer("/api/devices/CLN_HELD_OLD/commands/", {
        "command": "resume", "infusionId": session.infusion_id, "idempotencyKey": "new-1", "askedAt": asked(),
    })  # fmt: skip
    assert status == 202 and body["command"]["askedAt"], (status, body)  # pressed just now: carried out
    wait_until(lambda: published(pump, "RESUME_INFUSION"), message="the Resume pressed just now never reached the pump")


def test_a_second_nurses_identical_pause_is_recorded_without_a_second_command(
    clinical_bridge, clinical_pump, daphne_server
):
    ward = make_ward("held-two")
    pump = clinical_pump("CLN_TWO_NURSES")
    make_device("CLN_TWO_NURSES", ward=ward, has_presence=True)
    pump.publish("status", {"status": "online"})
    session = infusion_start(device_id="CLN_TWO_NURSES", order=make_order(drug="Heparin"))
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    make_user("first-nurse", ward=ward)
    make_user("second-nurse", ward=ward)
    first, second = BrowserSession(daphne_server.url, "first-nurse"), BrowserSession(daphne_server.url, "second-nurse")
    path = "/api/devices/CLN_TWO_NURSES/commands/"
    status, mine = first.answer(path, {"command": "pause", "infusionId": session.infusion_id, "reason": "line change",
                                       "idempotencyKey": "first-dialog", "askedAt": asked()})  # fmt: skip
    assert status == 202, mine
    for _ in range(2):  # her request, then the same request again (its reply lost)
        status, hers = second.answer(path, {"command": "pause", "infusionId": session.infusion_id,
                                            "reason": "patient agitated", "idempotencyKey": "second-dialog",
                                            "askedAt": asked()})  # fmt: skip
        assert status == 202 and hers["command"]["commandId"] == mine["command"]["commandId"], (status, hers)
    pauses = Command.objects.filter(device__device_id="CLN_TWO_NURSES", kind=CommandKind.PAUSE_INFUSION)
    assert pauses.count() == 1, "the second nurse's Pause queued a second command to the pump"
    presses = DeviceEvent.objects.filter(device__device_id="CLN_TWO_NURSES", kind="user.pause_infusion")
    by = sorted((event.user.username, event.payload.get("reason"), event.payload.get("joined")) for event in presses)
    assert by == [("first-nurse", "line change", None),
                  ("second-nurse", "patient agitated", mine["command"]["commandId"])], (
        f"the second nurse's press (and her reason) is not recorded once, as joining the Pause under way: {by}"
    )  # fmt: skip
    wait_until(lambda: published(pump, "PAUSE_INFUSION"), message="PAUSE never reached the pump")
    assert len(published(pump, "PAUSE_INFUSION")) == 1
