"""End record… of an infusion a pump with presence holds paused, against a simulated pump through a real Mosquitto and
a real bridge (review 46, M1).

The simulated pump has presence (a retained `online`, a Last Will) and publishes nothing while paused, as the contract
allows. Paused from the server, it was "no ghost" for HEARTBEAT_TIMEOUT_S only: after that End record was accepted,
the pump shown free for a new order while it held the order paused, and its resume ran the ended order with a high
`confirmed_late`. Now the end is refused however long the pump is silent while paused, as long as it is online by its
presence; its resume then runs the order it never lost. Once its Last Will says it went, the end is the person's.
"""

import pytest
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, InfusionSession
from devices.selectors import pump_status_latest
from devices.services.pumps import INFORMATIONAL_STATUSES
from devices.services.requests import infusion_record_end, infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind, Presence, SessionStatus
from tests.factories import make_device, make_order, make_user
from tests.integration.simulator.test_end_record_of_a_running_pump import (
    HEARTBEAT_TIMEOUT_S,
    ORDER,
    running_with_progress,
)
from tests.integration.simulator.test_infusions_through_the_bridge import simulators  # noqa: F401
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _status(infusion_id: str, status: SessionStatus) -> InfusionSession:
    return wait_until(lambda: InfusionSession.objects.filter(infusion_id=infusion_id, status=status).first(),
                      message=f"infusion {infusion_id} never became {status}")  # fmt: skip


def _silent_for(device_id: str) -> float:
    return (timezone.now() - Device.objects.get(device_id=device_id).last_seen_at).total_seconds()


def test_a_pump_with_presence_silent_while_paused_keeps_its_infusion(
    sim_bridge,
    simulators,  # noqa: F811
    settings,
):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": HEARTBEAT_TIMEOUT_S}  # judged as the bridge
    make_device("SIMT_ENDREC_PAUSED", has_presence=True)
    nurse = make_user("simt-endrec-paused-nurse")
    sim = simulators("SIMT_ENDREC_PAUSED", "--auto", "--confirm-delay", "0.2")
    wait_until(lambda: Device.objects.filter(device_id="SIMT_ENDREC_PAUSED", presence=Presence.ONLINE).exists(),
               message=f"the pump's retained online status never arrived:\n{sim.log_tail()}")  # fmt: skip
    session = running_with_progress(infusion_start(device_id="SIMT_ENDREC_PAUSED", order=make_order(**ORDER)), sim)
    infusion_id = session.infusion_id

    infusion_request(device_id="SIMT_ENDREC_PAUSED", kind=CommandKind.PAUSE_INFUSION, infusion_id=infusion_id,
                     user=nurse)  # fmt: skip
    _status(infusion_id, SessionStatus.PAUSED)
    wait_until(lambda: _silent_for("SIMT_ENDREC_PAUSED") > 2 * HEARTBEAT_TIMEOUT_S,
               message="the paused pump's silence never grew past the heartbeat")  # fmt: skip
    device = Device.objects.get(device_id="SIMT_ENDREC_PAUSED")
    said = pump_status_latest(device=device, since=session.created_at, ignoring=INFORMATIONAL_STATUSES)
    assert (said or {}).get("status") == "paused", f"precondition: the pump's last word is its pause ({said})"
    assert device.connectivity() == "online", "precondition: online by its presence, its Will not come"

    with pytest.raises(PumpStreamError) as refused:
        infusion_record_end(infusion_id=infusion_id, user=nurse, reason="pump seems not to have it")
    assert refused.value.code == "session_paused", (
        f"End record of Heparin, which the pump (online, silent while paused, as the contract allows) holds paused, "
        f"was not refused as paused: {refused.value.code}: {refused.value.message}"
    )
    assert InfusionSession.objects.get(infusion_id=infusion_id).status == SessionStatus.PAUSED

    infusion_request(device_id="SIMT_ENDREC_PAUSED", kind=CommandKind.RESUME_INFUSION, infusion_id=infusion_id,
                     user=nurse)  # fmt: skip
    running_with_progress(session, sim)
    late = list(Alarm.objects.filter(session__infusion_id=infusion_id, type="confirmed_late").values_list("message"))
    assert not late, f"the pump resumed the order it held: {late}"

    sim.stop()  # switched off: its Last Will says it went, and the record is the person's to end
    wait_until(lambda: Device.objects.get(device_id="SIMT_ENDREC_PAUSED").presence == Presence.OFFLINE,
               message="a pump switched off must say offline")  # fmt: skip
    ended = infusion_record_end(infusion_id=infusion_id, user=nurse, reason="pump switched off")
    assert ended.status == SessionStatus.INTERRUPTED
