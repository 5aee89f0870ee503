"""The volume, time and bolus a pump tells on receiving an order (`received_start_command`'s `currentInfusion`) are
read back as its rate is (`test_readback_received_rate.py`).

Both firmwares tell them there (the original as `volume`, `time`, `bolusEnabled`, `bolusVolume`; the PumpStream
firmware by the contract's names), but only the rate was compared: a pump holding 300 mL of a 30 mL order on its
confirm screen raised nothing until its confirmation or its delivered volume did, and with the confirmation lost (the
original firmware's QoS 0) the order ran "unverified" though the pump had said it. A value off the order beyond a
confirmation's tolerance is a high `parameter_mismatch` at once, naming the field; matching values are no confirmation;
a field left out is not compared; a copy of the report (a retained replay) changes nothing.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.services.alarm_rules import alarm_resolve
from devices.services.sessions import infusion_start
from realtime.simulator.legacy import LegacyFirmware
from realtime.simulator.modern import ModernFirmware
from realtime.simulator.pump import Order
from tests.clinical.scenario import legacy_step, legacy_steps
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import ingest, report, send, start_sent

pytestmark = pytest.mark.django_db

# The order of `make_order`: 2 mL/min (120 mL/h), 30 mL, 15 min, a bolus of 5 mL
AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True,
              "bolusVolumeMl": 5}  # fmt: skip
LEGACY_AS_ORDERED = {"rate": 2.0, "volume": 30, "time": 15, "bolusEnabled": True, "bolusVolume": 5}


def _mismatch(session: InfusionSession) -> Alarm | None:
    return Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").first()


def _alarms(session: InfusionSession) -> list[tuple[str, str, str]]:
    return list(Alarm.objects.filter(session=session).values_list("type", "state", "message"))


def _received(capture, device_id: str, current: dict) -> InfusionSession:
    """An order that reached a PumpStream pump, which said it received `current`."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    send(capture, device_id, "status", {"status": "received_start_command", "infusionId": session.infusion_id,
                                        "currentInfusion": current})  # fmt: skip
    return InfusionSession.objects.get(pk=session.pk)


def _legacy(capture, device_id: str, current: dict, *, started: bool = True) -> InfusionSession:
    """The original firmware's received_start_command telling `current` (its names, no infusionId), then its `started`
    status (evidence): its confirmation lost."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    start_sent(session)  # its answers name no infusion: about it once its START went out
    steps, at = legacy_steps("infusion", session.infusion_id, device_id), timezone.now()
    received = legacy_step(steps, "/status", status="received_start_command")
    received = {**received, "payload": {**received["payload"], "currentInfusion": current}}
    batch = [received, legacy_step(steps, "/status", status="started")] if started else [received]
    for n, step in enumerate(batch):
        ingest([report("", "", step["payload"], topic=step["topic"], at=at + timedelta(seconds=n))], capture)
    return InfusionSession.objects.get(pk=session.pk)


def test_a_volume_received_off_the_order_raises_parameter_mismatch_at_once(django_capture_on_commit_callbacks):
    session = _received(django_capture_on_commit_callbacks, "RECV_VOL", {**AS_ORDERED, "plannedVolumeMl": 300})
    alarm = _mismatch(session)
    assert alarm is not None and alarm.priority == "high", (
        f"the pump said it received 300 mL of a 30 mL order and nothing alarmed: {_alarms(session)}"
    )
    assert alarm.message == ("The pump received the order with another planned volume: it reports 300 mL, not the "
                             "order's 30 mL: check its screen"), alarm.message  # fmt: skip
    assert alarm.details["receivedParameters"] == {"plannedVolumeMl": 300}, alarm.details
    assert "receivedPlannedVolumeMl" in alarm.details["fields"], alarm.details
    assert session.status == "pending" and session.read_back == "", "not accepted yet: nothing runs, nothing read back"


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ({"plannedTimeMin": 150}, "with another planned time: it reports 150 min, not the order's 15 min"),
        ({"bolusEnabled": True, "bolusVolumeMl": 50}, "with another bolus: it reports 50 mL, not the order's 5 mL"),
        ({"bolusEnabled": False, "bolusVolumeMl": 0}, "with another bolus: it reports none, not the order's 5 mL"),
    ],
)
def test_a_time_or_bolus_received_off_the_order_is_named(django_capture_on_commit_callbacks, current, message):
    session = _received(django_capture_on_commit_callbacks, "RECV_FIELD", {**AS_ORDERED, **current})
    alarm = _mismatch(session)
    assert alarm is not None, f"the pump said it received {current} and nothing alarmed: {_alarms(session)}"
    assert alarm.message == f"The pump received the order {message}: check its screen", alarm.message


def test_within_tolerance_is_the_order(django_capture_on_commit_callbacks):
    """Volumes within 0.05 mL and time within 0.1 min, as a confirmation's: no alarm."""
    close = {**AS_ORDERED, "plannedVolumeMl": 30.04, "plannedTimeMin": 15.09, "bolusVolumeMl": 4.96}
    session = _received(django_capture_on_commit_callbacks, "RECV_CLOSE", close)
    assert _alarms(session) == [], _alarms(session)


def test_several_fields_off_are_all_named(django_capture_on_commit_callbacks):
    current = {**AS_ORDERED, "flowRateMlMin": 20.0, "plannedVolumeMl": 300}
    session = _received(django_capture_on_commit_callbacks, "RECV_MANY", current)
    alarm = _mismatch(session)
    assert alarm is not None and alarm.message == (
        "The pump received the order with other parameters: rate 1200 mL/h, not the order's 120 mL/h; planned volume "
        "300 mL, not the order's 30 mL: check its screen"
    ), _alarms(session)


def test_the_original_firmware_off_volume_with_its_confirmation_lost_runs_as_a_mismatch(
    django_capture_on_commit_callbacks,
):
    session = _legacy(django_capture_on_commit_callbacks, "RECV_LEGACY_VOL", {**LEGACY_AS_ORDERED, "volume": 300})
    assert session.status == "running" and session.read_back == "mismatch", (
        f"it said 300 mL on receiving a 30 mL order, then ran it unconfirmed: read-back {session.read_back}"
    )
    alarm = _mismatch(session)
    assert alarm is not None and "planned volume: it reports 300 mL" in alarm.message, _alarms(session)


def test_the_original_firmware_disabled_bolus_for_an_order_with_one_is_named(django_capture_on_commit_callbacks):
    told = {**LEGACY_AS_ORDERED, "bolusEnabled": False, "bolusVolume": 0}
    session = _legacy(django_capture_on_commit_callbacks, "RECV_LEGACY_BOLUS", told, started=False)
    alarm = _mismatch(session)
    assert alarm is not None and alarm.message == (
        "The pump received the order with another bolus: it reports none, not the order's 5 mL: check its screen"
    ), _alarms(session)


def test_a_matching_confirmation_after_it_keeps_the_mismatch(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _received(capture, "RECV_VOL_THEN_OK", {**AS_ORDERED, "plannedTimeMin": 150})
    send(capture, "RECV_VOL_THEN_OK", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                                   "parameters": AS_ORDERED}, 1)  # fmt: skip
    session.refresh_from_db()
    assert session.status == "running" and session.read_back == "mismatch", (session.status, session.read_back)
    assert _mismatch(session) is not None, "the mismatch alarm was cleared by a confirmation echoing the order"


@pytest.mark.parametrize("current", [{}, {"flowRateMlMin": 2.0}, {"plannedVolumeMl": 30}, {"volume": "300"}])
def test_fields_left_out_are_not_compared(django_capture_on_commit_callbacks, current):
    """Nothing told (or told as text, not read) is nothing to compare: no alarm, and the confirmation decides."""
    capture = django_capture_on_commit_callbacks
    session = _received(capture, "RECV_PART", current)
    assert _alarms(session) == [], _alarms(session)
    send(capture, "RECV_PART", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                            "parameters": AS_ORDERED}, 1)  # fmt: skip
    session.refresh_from_db()
    assert session.read_back == "match" and _alarms(session) == [], (session.read_back, _alarms(session))


def test_a_retained_replay_after_a_resolve_raises_nothing(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    body = {"status": "received_start_command", "currentInfusion": {**AS_ORDERED, "plannedVolumeMl": 300}}
    session = _received(capture, "RECV_REPLAY", body["currentInfusion"])
    body["infusionId"] = session.infusion_id
    user = make_user("charge")
    user.user_permissions.add(Permission.objects.get(codename="resolve_alarm"))
    alarm_resolve(alarm_id=_mismatch(session).pk, user=user, reason="checked_at_pump", alerts=1)
    send(capture, "RECV_REPLAY", "status", {"status": "online"}, 1)  # another payload on the topic since
    ingest([report("RECV_REPLAY", "status", body, 2, retain=True)], capture)  # the broker hands the copy back
    assert _mismatch(session) is None, f"a retained copy raised the resolved mismatch again: {_alarms(session)}"


@pytest.mark.parametrize("firmware", [LegacyFirmware, ModernFirmware])
def test_the_simulators_received_start_as_ordered_raises_nothing(django_capture_on_commit_callbacks, firmware):
    """Both firmwares' field names, as the simulator publishes them, are read as the order."""
    device_id = f"RECV_SIM_{firmware.__name__}"
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    start_sent(session)  # the original firmware's receipt names no infusion: about it once its START went out
    order = Order(2.0, 30.0, 15.0, bolus_enabled=True, bolus_volume_ml=5.0, infusion_id=session.infusion_id)
    (message,) = firmware(device_id).received_start(order)
    ingest([report("", "", message.payload, topic=message.topic)], django_capture_on_commit_callbacks)
    session.refresh_from_db()
    assert session.received_flow_rate_ml_min == 2.0 and session.received_parameters == {
        "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True, "bolusVolumeMl": 5.0}, (
        session.received_parameters
    )  # fmt: skip
    assert _alarms(session) == [], _alarms(session)
