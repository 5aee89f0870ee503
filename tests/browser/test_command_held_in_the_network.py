"""A Resume held up in the network: the monitor says it is being sent, and the server refuses it once it arrives
after the nurse acted at the pump (review 46, H1).

Before, the page showed nothing while the request was held (Resume enabled, no notice), the server queued it when it
arrived 20 s later, and the pump resumed the line she had meanwhile resumed, then paused again at its screen.
"""

from datetime import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Command, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import CommandKind, SessionStatus
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_is(session: InfusionSession, status: SessionStatus) -> bool:
    return InfusionSession.objects.get(pk=session.pk).status == status


def test_a_resume_held_in_the_network_says_sending_and_is_refused_after_the_pump_changed(open_page, stack):
    ward = make_ward("r46held")
    make_device("BRW_R46_HELD", ward=ward, bed="3", has_presence=True)
    nurse = make_user("r46held-nurse", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_R46_HELD")
    try:
        pump.publish("status", {"status": "online"})
        session = infusion_start(device_id="BRW_R46_HELD", order=make_order(drug="Noradrenaline"), user=nurse)
        pump.publish("infusion", {"confirmed": True, "infusionId": session.infusion_id})
        pump.publish("status", {"status": "paused", "infusionId": session.infusion_id})
        wait_until(lambda: status_is(session, SessionStatus.PAUSED), message="precondition: the infusion is paused")
        page = open_page(nurse, "/devices/BRW_R46_HELD/")
        expect(page.locator("#mon-session")).to_have_text("Paused", timeout=10_000)
        held = []  # a stalled Wi-Fi or proxy holds the request
        page.route("**/api/devices/*/commands/", lambda route: held.append(route))
        resume = page.get_by_role("button", name="Resume", exact=True)
        resume.click()
        page.locator("#confirm-dialog").get_by_role("button", name="Resume infusion").click()
        notice = page.locator("#control-notice")
        expect(notice, "the Resume is held in the network, yet the page says nothing of it").to_contain_text(
            "Sending your Resume", timeout=5_000
        )
        expect(resume, "the Resume is being sent, yet its button is offered again").to_be_disabled()
        assert held, "precondition: the request is held"
        # She walks to the pump: it acts after the press on the server's clock. The page dates the press by its estimate
        # of that clock, which errs later by up to a round trip (never earlier): a change within that margin may be
        # taken for one before the press (ci51, a loaded machine: the pump acted within a second of the press).
        pressed = datetime.fromisoformat(held[0].request.post_data_json["askedAt"].replace("Z", "+00:00"))
        wait_until(lambda: timezone.now() > pressed, message="the server's clock passes the press as the page dated it")
        # meanwhile, at the pump: she resumes, sees the line is wrong, pauses again to fix it
        pump.publish("actions", {"action": "MANUAL_RESUME", "infusionId": session.infusion_id})
        pump.publish("status", {"status": "running", "infusionId": session.infusion_id})
        wait_until(lambda: status_is(session, SessionStatus.RUNNING), message="the resume at the pump never applied")
        pump.publish("actions", {"action": "MANUAL_PAUSE", "infusionId": session.infusion_id})
        pump.publish("status", {"status": "paused", "infusionId": session.infusion_id})
        wait_until(lambda: status_is(session, SessionStatus.PAUSED), message="the pause at the pump never applied")
        past_the_limit = "no answer past the server's limit: the page tells her it may not be carried out"
        expect(notice, past_the_limit).to_contain_text("No answer yet to your Resume", timeout=10_000)
        held[0].continue_()  # the network recovers and delivers the request
        expect(notice).to_contain_text("after you pressed Resume", timeout=10_000)
        expect(notice).to_contain_text("Look at the pump")
        expect(resume).to_be_enabled()
        expect(page.locator("#event-list"), "the refusal is not in the pump's log").to_contain_text(
            "r46held-nurse asked the pump to resume, pressed at", timeout=5_000
        )
        expect(page.locator("#event-list")).to_contain_text("refused (the pump reported a change after the press)")
        page.wait_for_timeout(1_000)  # the bridge's outbox would have sent a queued Resume by now
        resumes = list(Command.objects.filter(device__device_id="BRW_R46_HELD", kind=CommandKind.RESUME_INFUSION))
        assert not resumes and "RESUME_INFUSION" not in [c["command"] for c in pump.commands], (
            "the Resume held in the network was carried out after she resumed and paused again at the pump"
        )
        assert status_is(session, SessionStatus.PAUSED)
    finally:
        pump.close()
