"""The rate a pump tells on receiving an order (`received_start_command`'s `currentInfusion`) is read back (review 19,
lead 4's note).

Both firmwares send it when START_INFUSION arrives, before anyone accepts at the pump; it was never compared, so when
the confirmation was lost (the original firmware publishes at QoS 0) the order ran "unverified" though the pump had
said its rate. A rate off the order is a high `parameter_mismatch` as a confirmation's is, and the order that runs is
a mismatch whatever it then confirms; a rate that matches is no confirmation (it comes before acceptance): the order
running without one stays unverified, and its `parameters_unverified` says what the pump told.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, InfusionSession
from devices.services.sessions import infusion_start
from realtime.bridge.housekeeping import Housekeeping
from tests.clinical.scenario import legacy_step, legacy_steps
from tests.factories import make_device, make_order
from tests.support.ingest import ingest, report, send, start_sent

pytestmark = pytest.mark.django_db

AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True,
              "bolusVolumeMl": 5}  # fmt: skip
GRACE_S = 5.0


@pytest.fixture
def grace(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "EVIDENCE_CONFIRMATION_GRACE_S": GRACE_S}


def _mismatch(session: InfusionSession) -> Alarm | None:
    return Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").first()


def _received(capture, device_id: str, current: dict, *, named: bool = True) -> InfusionSession:
    """An order of 2 mL/min (120 mL/h) that reached the pump, which said it received `current`."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    start_sent(session)  # a receipt naming no infusion is about it once its START went out
    ids = {"infusionId": session.infusion_id} if named else {}
    send(capture, device_id, "status", {"status": "received_start_command", **ids, "currentInfusion": current})
    return InfusionSession.objects.get(pk=session.pk)


def _legacy(capture, device_id: str, rate: float, *, at) -> InfusionSession:
    """The original firmware's received_start_command (its `rate` name, no infusionId), then its `started` status
    (evidence): its confirmation lost."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    start_sent(session)  # its answers name no infusion: about it once its START went out
    steps = legacy_steps("infusion", session.infusion_id, device_id)
    for n, kind in enumerate(["received_start_command", "started"]):
        step = legacy_step(steps, "/status", status=kind)
        if kind == "received_start_command":
            step = {**step, "payload": {**step["payload"], "currentInfusion": {**step["payload"]["currentInfusion"],
                                                                                "rate": rate}}}  # fmt: skip
        ingest([report("", "", step["payload"], topic=step["topic"], at=at + timedelta(seconds=n))], capture)
    return InfusionSession.objects.get(pk=session.pk)


def test_a_rate_received_off_the_order_raises_parameter_mismatch_at_once(django_capture_on_commit_callbacks):
    session = _received(django_capture_on_commit_callbacks, "RECV_OFF", {**AS_ORDERED, "flowRateMlMin": 20.0})
    alarm = _mismatch(session)
    assert alarm is not None and alarm.priority == "high", (
        f"the pump said it received the order at 1,200 mL/h (ordered 120 mL/h) and nothing alarmed: "
        f"{list(Alarm.objects.values_list('type', 'state'))}"
    )
    assert alarm.message == ("The pump received the order at another rate: it reports 1200 mL/h, not the order's "
                             "120 mL/h: check its screen"), alarm.message  # fmt: skip
    assert session.status == "pending" and session.read_back == "", "not accepted yet: nothing runs, nothing read back"
    assert payloads.session_body(session).session.receivedFlowRateMlMin == 20.0


def test_a_matching_confirmation_after_it_keeps_the_mismatch(django_capture_on_commit_callbacks):
    """The pump's own reports disagree (received 1,200 mL/h, confirmed 120): when in doubt, alarm; a person checks."""
    capture = django_capture_on_commit_callbacks
    session = _received(capture, "RECV_THEN_OK", {**AS_ORDERED, "flowRateMlMin": 20.0})
    confirmation = {"infusionId": session.infusion_id, "confirmed": True, "parameters": AS_ORDERED}
    send(capture, "RECV_THEN_OK", "infusion", confirmation, 1)
    session.refresh_from_db()
    assert session.status == "running" and session.read_back == "mismatch", (session.status, session.read_back)
    assert _mismatch(session) is not None, "the mismatch alarm was cleared by a confirmation echoing the order"


def test_the_original_firmware_off_rate_with_its_confirmation_lost_runs_as_a_mismatch(
    django_capture_on_commit_callbacks,
):
    session = _legacy(django_capture_on_commit_callbacks, "RECV_LEGACY_OFF", 20.0, at=timezone.now())
    assert session.status == "running" and session.read_back == "mismatch", (
        f"it said 1,200 mL/h on receiving a 120 mL/h order, then ran it unconfirmed: read-back {session.read_back}"
    )
    assert _mismatch(session) is not None


def test_a_matching_received_rate_is_no_confirmation(grace, django_capture_on_commit_callbacks):
    """Confirmation lost: unverified, and after the grace `parameters_unverified` says what the pump told, no more."""
    now = timezone.now()
    session = _legacy(django_capture_on_commit_callbacks, "RECV_LEGACY_OK", 2.0, at=now)
    assert session.read_back == "unverified" and _mismatch(session) is None, (session.read_back, _mismatch(session))
    with django_capture_on_commit_callbacks(execute=True):
        Housekeeping().tick(now + timedelta(seconds=1 + GRACE_S + 1), connected_since=now - timedelta(hours=1))
    alarm = Alarm.objects.get(session=session, type="parameters_unverified")
    assert alarm.priority == "medium" and alarm.state == "active", (alarm.priority, alarm.state)
    assert alarm.message.endswith("(on receiving the order it showed 120 mL/h, 30 mL, 15 min, a bolus of 5 mL, as "
                                  "ordered: not a confirmation of what it runs)"), alarm.message  # fmt: skip
    assert alarm.details["receivedFlowRate"] == 2.0, alarm.details
    assert alarm.details["receivedParameters"] == {"plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True,
                                                   "bolusVolumeMl": 5}, alarm.details  # fmt: skip


def test_a_matching_received_rate_then_its_confirmation_matches(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _received(capture, "RECV_OK", AS_ORDERED)
    send(capture, "RECV_OK", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                          "parameters": AS_ORDERED}, 1)  # fmt: skip
    session.refresh_from_db()
    assert session.read_back == "match" and list(Alarm.objects.filter(session=session)) == []


def test_a_received_start_naming_another_infusion_is_not_read_back(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("RECV_OTHER")
    session = infusion_start(device_id="RECV_OTHER", order=make_order())
    send(capture, "RECV_OTHER", "status", {"status": "received_start_command", "infusionId": "inf_other",
                                           "currentInfusion": {"flowRateMlMin": 20.0}})  # fmt: skip
    session.refresh_from_db()
    assert session.received_flow_rate_ml_min is None and _mismatch(session) is None
