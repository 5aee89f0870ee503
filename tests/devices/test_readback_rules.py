"""Unit tests of strict read-back (contract v1.1): tolerance without a floor, 6 decimals, unverified, progress."""

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.progress import ProgressReport, progress_apply_many
from devices.services.progress_lock import progress_pumps_lock
from devices.services.readback import rate_within_tolerance, readback_compare
from devices.services.sessions import infusion_start, session_transition
from devices.states import AlarmState, ReadBack, SessionStatus
from protocol.schemas import ProgressPayload
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db(transaction=True)

ML_H = 1 / 60
FULL = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True, "bolusVolumeMl": 5}


def confirm(session, parameters):
    with transaction.atomic():
        device = device_lock(device_id=session.device.device_id)
        infusion_confirm(device=device, infusion_id=session.infusion_id, confirmed=True, parameters=parameters,
                         confirmation={"confirmed": True})  # fmt: skip
    session.refresh_from_db()
    return session


@pytest.mark.parametrize(
    ("ordered_ml_h", "reported_ml_h", "within"),
    [(1.0, 1.5, False), (1.0, 1.005, True), (1.0, 1.006, False), (0.1, 0.1004, True), (0.1, 0.102, False),
     (120.0, 120.6, True), (120.0, 120.61, False)],
)  # fmt: skip
def test_rate_tolerance_is_half_a_percent_with_no_floor(ordered_ml_h, reported_ml_h, within):
    assert rate_within_tolerance(ordered_ml_min=ordered_ml_h * ML_H, reported_ml_min=reported_ml_h * ML_H) is within


def test_a_rate_goes_out_with_six_decimals():
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order(
        flow_rate_ml_min=0.1 * ML_H, planned_volume_ml=0.1, planned_time_min=60, bolus_enabled=False))  # fmt: skip
    assert session.order["flowRateMlMin"] == 0.001667, "0.1 mL/h must not go out as 0.102 mL/h"


@pytest.mark.parametrize(
    ("reported", "expected", "fields"),
    [(FULL, ReadBack.MATCH, []), (None, ReadBack.UNVERIFIED, ["flowRateMlMin", "plannedVolumeMl", "plannedTimeMin",
                                                             "bolusEnabled"]),
     ({}, ReadBack.UNVERIFIED, ["flowRateMlMin", "plannedVolumeMl", "plannedTimeMin", "bolusEnabled"]),
     ({k: v for k, v in FULL.items() if k != "plannedTimeMin"}, ReadBack.UNVERIFIED, ["plannedTimeMin"]),
     ({**FULL, "bolusVolumeMl": None}, ReadBack.UNVERIFIED, ["bolusVolumeMl"]),
     ({"flowRateMlMin": 2.5}, ReadBack.MISMATCH, ["flowRateMlMin"]),
     ({**FULL, "bolusEnabled": False, "bolusVolumeMl": None}, ReadBack.MISMATCH, ["bolusEnabled"]),
     ({**FULL, "plannedVolumeMl": 30.1}, ReadBack.MISMATCH, ["plannedVolumeMl"])],
)  # fmt: skip
def test_readback_is_match_mismatch_or_unverified(reported, expected, fields):
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    assert readback_compare(session, reported) == (expected, fields)


def test_a_confirmation_without_parameters_is_unverified_with_a_medium_alarm():
    make_device()
    session = confirm(infusion_start(device_id="PUMP_0001", order=make_order()), None)
    assert session.status == SessionStatus.RUNNING and session.read_back == ReadBack.UNVERIFIED
    alarm = Alarm.objects.get(type="parameters_unverified")
    assert alarm.priority == "medium" and alarm.session == session
    assert not Alarm.objects.filter(type="parameter_mismatch").exists(), "unverified is not a mismatch"


def test_a_confirmation_leaving_a_field_out_names_it_in_its_alarm():
    """The alarm's text names what the pump left out (with nothing reported, its text says so already)."""
    make_device()
    confirm(infusion_start(device_id="PUMP_0001", order=make_order()), {**FULL, "plannedVolumeMl": None})
    alarm = Alarm.objects.get(type="parameters_unverified")
    assert alarm.message.endswith("(not reported: plannedVolumeMl)"), (
        f"the planned volume was not reported and the alarm a nurse reads does not say which: {alarm.message!r}"
    )


def progress(rate_ml_min: float) -> None:
    with transaction.atomic():
        pumps = progress_pumps_lock(device_ids=["PUMP_0001"])
        report = ProgressPayload.model_validate({"flowRate": rate_ml_min, "status": "running"})
        progress_apply_many(pumps=pumps, reports=[ProgressReport("PUMP_0001", report, timezone.now())])


def test_progress_beyond_tolerance_during_an_unverified_session_raises_a_mismatch():
    make_device()
    session = confirm(infusion_start(device_id="PUMP_0001", order=make_order()), None)
    progress(2.005)
    assert not Alarm.objects.filter(type="parameter_mismatch").exists(), "within 0.5 % is fine"
    progress(2.5)
    alarm = Alarm.objects.get(type="parameter_mismatch")
    assert alarm.session_id == session.pk and alarm.priority == "high"
    assert InfusionSession.objects.get(pk=session.pk).read_back == ReadBack.MISMATCH
    progress(2.6)
    assert Alarm.objects.get(type="parameter_mismatch").count == 1, "raised once, not at every report"


def test_a_second_mismatch_in_a_new_session_is_a_new_alarm_tied_to_it():
    make_device()
    first = confirm(infusion_start(device_id="PUMP_0001", order=make_order()), {**FULL, "flowRateMlMin": 5.0})
    with transaction.atomic():
        device = device_lock(device_id="PUMP_0001")
        session_transition(device=device, session=InfusionSession.objects.get(pk=first.pk), to=SessionStatus.STOPPED)
    second = confirm(infusion_start(device_id="PUMP_0001", order=make_order()), {**FULL, "flowRateMlMin": 7.0})
    alarms = Alarm.objects.filter(type="parameter_mismatch").order_by("pk")
    assert [alarm.session_id for alarm in alarms] == [first.pk, second.pk]
    assert alarms[0].state == AlarmState.CLEARED, "the first session's mismatch clears when it ends"
    assert alarms[1].state == AlarmState.ACTIVE and alarms[1].count == 1 and alarms[1].acknowledged_at is None
    assert second.read_back == ReadBack.MISMATCH
