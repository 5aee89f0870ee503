"""The admin's "End the record (the pump is not running it …)" against a simulated pump that is running it (review 30,
finding 6), through a real Mosquitto and a real bridge.

The reviewer's action was accepted for a pump sending progress every second; `confirmed_late` followed at once, and
5 s later a medium `parameters_unverified` said the pump "did not report the parameters it runs", although it had
confirmed them, matching. Now the action is refused while the pump reports running it; accepted once the pump has
fallen silent (the ghost the action is for), and should the pump then go on running the order, its confirmation
still holds (no restart since): `confirmed_late` says so, nothing claims it never reported its parameters.
"""

import os
import signal

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, Presence, ReadBack, SessionStatus
from tests.factories import make_device, make_order
from tests.integration.simulator.test_infusions_through_the_bridge import simulators  # noqa: F401
from tests.support.bridge import wait_until
from tests.support.processes import subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORDER = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 30.0, "planned_time_min": 15.0, "bolus_enabled": False,
         "bolus_volume_ml": 0.0, "drug": "Heparin"}  # fmt: skip  # 15 real minutes: running throughout
HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])  # the bridge's, as the tests start it


def end_record_in_the_admin(admin_client, session: InfusionSession) -> list[str]:
    """The admin's action on the infusion sessions' list, as an administrator posts it; the messages shown."""
    action = {"action": "end_record", "_selected_action": [session.pk]}
    response = admin_client.post("/admin/devices/infusionsession/", action, follow=True)
    return [str(message) for message in response.context["messages"]]


def silent_for(device_pk: int) -> float:
    """Seconds since the pump's latest progress was received."""
    return (timezone.now() - Device.objects.get(pk=device_pk).latest_progress_at).total_seconds()


def running_with_progress(session: InfusionSession, sim) -> InfusionSession:
    """The session once the pump has confirmed it and reports progress of it running."""

    def reported_running() -> InfusionSession | None:
        fresh = InfusionSession.objects.select_related("device").get(pk=session.pk)
        progress = fresh.progress_on(fresh.device) or {}
        return fresh if fresh.status == SessionStatus.RUNNING and progress.get("status") == "running" else None

    return wait_until(reported_running, message=f"the pump never reported the order running:\n{sim.log_tail()}")


def test_the_admin_does_not_end_the_record_of_an_infusion_the_pump_reports_running(
    sim_bridge,
    simulators,  # noqa: F811
    admin_client,
    settings,
):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": HEARTBEAT_TIMEOUT_S}  # judged as the bridge
    make_device("SIMT_ENDREC", has_presence=True)
    sim = simulators("SIMT_ENDREC", "--auto", "--confirm-delay", "0.2")
    wait_until(lambda: Device.objects.filter(device_id="SIMT_ENDREC", presence=Presence.ONLINE).exists(),
               message=f"the pump's retained online status never arrived:\n{sim.log_tail()}")  # fmt: skip
    session = running_with_progress(infusion_start(device_id="SIMT_ENDREC", order=make_order(**ORDER)), sim)
    assert session.read_back == ReadBack.MATCH, f"precondition: confirmed as ordered ({session.read_back})"

    shown = end_record_in_the_admin(admin_client, session)
    session.refresh_from_db()
    assert session.status == SessionStatus.RUNNING, (
        f"the admin ended the record of Heparin ('the pump is not running it') while the pump reported it running "
        f"every second; messages: {shown}"
    )
    assert any("no ghost" in message and "reported it running" in message for message in shown), shown
    assert not any(message.startswith("Ended") for message in shown), shown

    os.kill(sim.process.pid, signal.SIGSTOP)  # the pump falls silent: a ghost, as far as the server can tell
    try:
        wait_until(lambda: silent_for(session.device_id) > HEARTBEAT_TIMEOUT_S, message="its progress never aged")
        shown = end_record_in_the_admin(admin_client, session)
        assert "Ended 1 infusion record(s)." in shown, shown
    finally:
        os.kill(sim.process.pid, signal.SIGCONT)  # it was running all along, and goes on

    ran_again = wait_until(
        lambda: InfusionSession.objects.filter(pk=session.pk, status=SessionStatus.RUNNING).first(),
        message=f"the pump's running progress never ran the ended order again:\n{sim.log_tail()}",
    )
    late = Alarm.objects.filter(session=session, type="confirmed_late", state=AlarmState.ACTIVE).first()
    assert late is not None and "record was ended by admin" in late.message, "that it runs after its end is said"
    assert (ran_again.read_back, ran_again.unconfirmed_since) == (ReadBack.MATCH, None), (
        f"the pump confirmed Heparin as ordered and never restarted, yet once it ran on after its record was ended it "
        f"reads {ran_again.read_back!r}, waiting since {ran_again.unconfirmed_since} for a confirmation it gave: "
        "`parameters_unverified` follows ('did not report the parameters it runs')"
    )
