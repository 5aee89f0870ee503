"""Unit tests of a pump's `completed` judged by what it reported (review 44, F3): completed without remark only when
the order was delivered (the idle rule's tolerance), else `interrupted` with a high `infusion_interrupted` saying what
was given of what was ordered; the original firmware's final 35 of 30 mL (its bolus counted twice) is delivered."""

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.services.changes import device_lock
from devices.services.completions import completion_short
from devices.services.pumps import pump_report_apply
from devices.services.sessions import infusion_start, session_transition
from devices.services.tolerances import VOLUME_TOLERANCE_ML
from devices.states import AlarmState, SessionStatus
from protocol.schemas import payload_parse
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db

ORDER = InfusionSession(planned_volume_ml=30.0, bolus_enabled=True, bolus_volume_ml=5.0)


@pytest.mark.parametrize(("progress", "summary", "short"), [
    ({"deliveredVolumeMl": 8.0, "volumeRemainingMl": 22.0, "progressPercent": 26.7}, None,
     "the pump reports completed with 8 of 30 mL given (22 mL left)"),
    ({"deliveredVolumeMl": 8.0, "volumeRemainingMl": 22.0}, {"totalVolumeMl": 8.0, "plannedVolumeMl": 30},
     "the pump reports completed with 8 of 30 mL given (22 mL left)"),
    ({"volumeRemainingMl": VOLUME_TOLERANCE_ML}, None, ""),  # exactly at the tolerance: delivered
    ({"volumeRemainingMl": 0.06}, None, "the pump reports completed with 29.94 of 30 mL given (0.06 mL left)"),
    ({"deliveredVolumeMl": 35.0, "volumeRemainingMl": 0, "progressPercent": 100, "status": "completed"},
     {"totalVolumeMl": 30, "plannedVolumeMl": 30}, ""),  # the original firmware's final progress: bolus counted twice
    ({"deliveredVolumeMl": 30.0 - VOLUME_TOLERANCE_ML}, None, ""),  # no remaining figure: delivered, at the tolerance
    ({"deliveredVolumeMl": 12.0}, None, "the pump reports completed with 12 of 30 mL given (18 mL left)"),
    ({"progressPercent": 100}, None, ""),
    ({"progressPercent": 50}, None, "the pump reports completed with 15 of 30 mL given (15 mL left)"),
    ({"deliveredVolumeMl": 29.9, "volumeRemainingMl": 0.1}, {"totalVolumeMl": 30}, ""),  # its summary: delivered
    ({"status": "running"}, None, ""),  # no figure at all: nothing says otherwise, its word stands
    (None, {"totalVolumeMl": 8.0}, "the pump reports completed with 8 of 30 mL given (22 mL left)"),
])  # fmt: skip
def test_a_completion_is_judged_by_the_order_delivered(progress, summary, short):
    assert completion_short(ORDER, progress, summary) == short


def running_at(progress: dict) -> InfusionSession:
    """The order running on PUMP_0001, its last progress `progress`."""
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    with transaction.atomic():
        session_transition(device=device_lock(device_id="PUMP_0001"), session=session, to=SessionStatus.RUNNING)
    Device.objects.filter(pk=session.device_id).update(latest_progress=progress, latest_progress_at=timezone.now())
    return session


def reported(kind: str, payload: dict) -> None:
    pump_report_apply(device_id="PUMP_0001", kind=kind, topic=f"devices/PUMP_0001/{kind}",
                      report=payload_parse(kind, payload), received_at=timezone.now())  # fmt: skip


@pytest.mark.parametrize("how", ["completion", "status", "progress"])
def test_a_completion_short_of_the_order_ends_interrupted_saying_what_was_given(how):
    session = running_at({"status": "running", "deliveredVolumeMl": 8.0, "volumeRemainingMl": 22.0})
    if how == "completion":
        reported("completion", {"completed": True, "infusionId": session.infusion_id,
                                "summary": {"totalVolumeMl": 8.0, "plannedVolumeMl": 30}})  # fmt: skip
    elif how == "status":
        reported("status", {"status": "completed", "infusionId": session.infusion_id})
    else:
        reported("progress", {"status": "completed", "infusionId": session.infusion_id, "deliveredVolumeMl": 8.0,
                              "volumeRemainingMl": 22.0})  # fmt: skip
    ended = InfusionSession.objects.get(pk=session.pk)
    assert ended.status == SessionStatus.INTERRUPTED, f"22 of 30 mL left shown {ended.status!r}"
    alarm = Alarm.objects.get(type="infusion_interrupted", state=AlarmState.ACTIVE)
    assert alarm.priority == "high" and "8 of 30 mL given (22 mL left)" in alarm.message, alarm.message
    assert Device.objects.get(pk=session.device_id).pump_state == "idle"


def test_the_completion_after_a_short_completed_status_is_kept_with_the_interrupted_infusion():
    session = running_at({"status": "running", "deliveredVolumeMl": 8.0, "volumeRemainingMl": 22.0})
    reported("status", {"status": "completed", "infusionId": session.infusion_id})
    reported("completion", {"completed": True, "infusionId": session.infusion_id,
                            "summary": {"totalVolumeMl": 8.0, "plannedVolumeMl": 30}})  # fmt: skip
    ended = InfusionSession.objects.get(pk=session.pk)
    assert ended.status == SessionStatus.INTERRUPTED
    assert (ended.completion or {}).get("summary", {}).get("totalVolumeMl") == 8.0, "its summary was not kept"


@pytest.mark.parametrize("how", ["completion", "status"])
def test_a_completion_of_the_order_delivered_is_completed_without_a_word(how):
    session = running_at({"status": "running", "deliveredVolumeMl": 29.98, "volumeRemainingMl": 0.02})
    if how == "completion":
        reported("completion", {"completed": True, "summary": {"totalVolumeMl": 30, "plannedVolumeMl": 30}})
    else:
        reported("status", {"status": "completed"})
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.COMPLETED
    assert not Alarm.objects.filter(state=AlarmState.ACTIVE).exists()
