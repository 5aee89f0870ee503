"""Unit tests of the planned volume read back from running progress (review 44, F5): delivered + remaining against the
order, its tolerance (the confirmation's plus a count step; the order's bolus above), and one alert per distinct
mismatch."""

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.services.alarms import alarm_acknowledge
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.progress import ProgressReport, progress_apply_many
from devices.services.progress_lock import progress_pumps_lock
from devices.services.readback_planned import PLANNED_TOLERANCE_ML, planned_volume_matches, planned_volume_reported
from devices.services.sessions import infusion_start
from devices.states import ReadBack
from protocol.schemas import ProgressPayload
from tests.factories import make_device, make_order, make_user

pytestmark = pytest.mark.django_db(transaction=True)

FULL = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True, "bolusVolumeMl": 5}


def confirmed(**order) -> InfusionSession:
    """A 30 mL order (bolus 5 mL unless told) at 2 mL/min, confirmed with its own parameters: read-back `match`."""
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order(**order))
    bolus = order.get("bolus_enabled", True)
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id="PUMP_0001"), infusion_id=session.infusion_id, confirmed=True,
                         parameters={**FULL, "bolusEnabled": bolus, "bolusVolumeMl": 5 if bolus else 0},
                         confirmation={"confirmed": True})  # fmt: skip
    session.refresh_from_db()
    assert session.read_back == ReadBack.MATCH
    return session


def progress(*reports: dict) -> None:
    """Running progress reports about the order on the pump, applied in one batch as the bridge does."""
    with transaction.atomic():
        pumps = progress_pumps_lock(device_ids=["PUMP_0001"])
        items = [ProgressReport("PUMP_0001", ProgressPayload.model_validate({"status": "running", "flowRate": 2.0,
                                                                             **report}), timezone.now())
                 for report in reports]  # fmt: skip
        progress_apply_many(pumps=pumps, reports=items)


def mismatch() -> Alarm | None:
    return Alarm.objects.filter(type="parameter_mismatch", state="active").first()


@pytest.mark.parametrize(("report", "planned"), [
    ({"deliveredVolumeMl": 6.0, "volumeRemainingMl": 54.0}, 60.0),
    ({"deliveredVolumeMl": 5.07, "volumeRemainingMl": 24.82}, 29.89),  # the original firmware's running figures
    ({"deliveredVolumeMl": 6.0}, None),  # a pump that reports only what it delivered tells no program
    ({"volumeRemainingMl": 24.0}, None),
])  # fmt: skip
def test_the_planned_volume_a_progress_reports_is_delivered_plus_remaining(report, planned):
    assert planned_volume_reported(ProgressPayload.model_validate(report)) == planned


@pytest.mark.parametrize(("bolus_enabled", "planned", "matches"), [
    (True, 30.0, True),
    (True, 30.0 - PLANNED_TOLERANCE_ML, True),  # exactly at the tolerance, under
    (True, 29.84, False),
    (True, 35.0 + PLANNED_TOLERANCE_ML, True),  # the bolus counted twice (the original firmware), at the tolerance
    (True, 35.16, False),
    (False, 30.0 + PLANNED_TOLERANCE_ML, True),  # no bolus: none allowed over
    (False, 30.16, False),
    (True, 60.0, False),
])  # fmt: skip
def test_the_planned_volume_tolerance(bolus_enabled, planned, matches):
    session = InfusionSession(planned_volume_ml=30.0, bolus_enabled=bolus_enabled, bolus_volume_ml=5.0)
    assert planned_volume_matches(session, planned) == matches


def test_a_running_program_off_the_order_is_a_mismatch_raised_once():
    session = confirmed()
    progress({"deliveredVolumeMl": 6.0, "volumeRemainingMl": 24.0})
    assert mismatch() is None, "6 + 24 mL is the 30 mL order"
    progress({"deliveredVolumeMl": 6.03, "volumeRemainingMl": 53.97}, {"deliveredVolumeMl": 6.06,
                                                                       "volumeRemainingMl": 53.94})  # fmt: skip
    alarm = mismatch()
    assert alarm is not None and alarm.priority == "high", "a 60 mL program for a 30 mL order raised nothing"
    assert "it reports 60 mL to give (6.06 mL delivered + 53.94 mL remaining), not the order's 30 mL" in alarm.message
    assert InfusionSession.objects.get(pk=session.pk).read_back == ReadBack.MISMATCH
    progress({"deliveredVolumeMl": 6.09, "volumeRemainingMl": 53.91})
    assert mismatch().count == 1, "the same wrong program is said once, not at every report"


def test_a_program_without_a_remaining_figure_is_not_compared():
    session = confirmed(bolus_enabled=False)
    progress({"deliveredVolumeMl": 6.0}, {"deliveredVolumeMl": 6.03, "progressPercent": 10})
    assert mismatch() is None
    assert InfusionSession.objects.get(pk=session.pk).read_back == ReadBack.MATCH


def test_the_original_firmwares_running_figures_are_its_order():
    confirmed()
    progress({"deliveredVolumeMl": 5.04, "volumeRemainingMl": 24.86}, {"deliveredVolumeMl": 5.07,
                                                                       "volumeRemainingMl": 24.82})  # fmt: skip
    assert mismatch() is None, mismatch() and mismatch().message


def test_a_second_mismatch_does_not_hide_in_the_first():
    """A rate off the order, acknowledged; then the program off it too: the same alarm alerts again and names both. A
    second wrong program (90 mL after 60 mL) alerts again too."""
    confirmed()
    progress({"deliveredVolumeMl": 6.0, "volumeRemainingMl": 24.0, "flowRate": 3.0})
    alarm = mismatch()
    assert alarm is not None and "it reports 180 mL/h" in alarm.message
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("nurse"))
    progress({"deliveredVolumeMl": 6.0, "volumeRemainingMl": 54.0, "flowRate": 3.0})
    alarm = mismatch()
    assert alarm.acknowledged_at is None, "the planned volume off the order hid in the acknowledged rate mismatch"
    assert "60 mL to give" in alarm.message and "180 mL/h" in alarm.message, alarm.message
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("nurse2"))
    progress({"deliveredVolumeMl": 6.1, "volumeRemainingMl": 53.9, "flowRate": 3.0})
    assert mismatch().acknowledged_at is not None, "the same program again is no news"
    progress({"deliveredVolumeMl": 6.2, "volumeRemainingMl": 83.8, "flowRate": 3.0})
    alarm = mismatch()
    assert alarm.acknowledged_at is None, "a second wrong program (90 mL) hid in the first (60 mL)"
    assert "it reports 90 mL to give" in alarm.message and "(earlier 60 mL)" in alarm.message, alarm.message
