"""A pump's `completed` (or `idle`) judged with what it could have delivered since its last progress (review 45): at a
high rate the last progress is up to a second old, so 0.28 mL short at 999 mL/h, and when the pump's final progress
(QoS 0) was lost a normal completion ended `interrupted` with a high `infusion_interrupted`. Its rate times the time
since that progress is allowed (the pump's own clock may only narrow that time, never beyond `UNREPORTED_MAX_S`), so
an order clearly short (22 of 30 mL left) still ends `interrupted`. The bridge's side:
tests/clinical/test_broken_pump_reports.py."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.services.changes import device_lock
from devices.services.pumps import pump_report_apply
from devices.services.restarts import progress_says_finished
from devices.services.sessions import infusion_start, session_transition
from devices.services.unreported import UNREPORTED_MAX_S, unreported_ml
from devices.states import AlarmState, SessionStatus
from protocol.schemas import payload_parse
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db

RATE = 999 / 60  # mL/min: the highest rate an order may have


def running_at(progress: dict, *, ago_s: float, rate: float = RATE) -> InfusionSession:
    """A 30 mL order at `rate` running on PUMP_0001, its last progress `progress` received `ago_s` seconds ago."""
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order(flow_rate_ml_min=rate,
                                                                      planned_time_min=30 / rate))  # fmt: skip
    with transaction.atomic():
        session_transition(device=device_lock(device_id="PUMP_0001"), session=session, to=SessionStatus.RUNNING)
    Device.objects.filter(pk=session.device_id).update(
        latest_progress={"status": "running", "flowRate": rate, **progress},
        latest_progress_at=timezone.now() - timedelta(seconds=ago_s),
    )
    return InfusionSession.objects.get(pk=session.pk)


def allowed(progress: dict, *, ago_s: float, sent: object = None, rate: float = RATE) -> float:
    session = running_at(progress, ago_s=ago_s, rate=rate)
    device = Device.objects.get(pk=session.device_id)
    return unreported_ml(device=device, session=session, sent=sent, received_at=device.latest_progress_at
                         + timedelta(seconds=ago_s))  # fmt: skip


@pytest.mark.parametrize(("progress", "ago_s", "sent", "seconds"), [
    ({}, 1.0, None, 1.0),  # by the server's receive times
    ({"timestamp": 973_000}, 1.0, 973_500, 0.5),  # the pump's uptime narrows it
    ({"timestamp": 973_000}, 1.0, 975_000, 1.0),  # never widens it
    ({"timestamp": 973_000}, 1.0, 972_000, 1.0),  # a clock gone back says nothing
    ({"timestamp": "2026-12-02T10:00:00.000Z"}, 1.0, "2026-12-02T11:00:00.300+01:00", 0.3),  # ISO with offsets
    ({"timestamp": 973_000}, 1.0, "2026-12-02T10:00:00Z", 1.0),  # two clocks: not compared
    ({}, 60.0, None, UNREPORTED_MAX_S),  # received a minute later (queued while the bridge was away): bounded
    ({"status": "paused"}, 1.0, None, 0.0),  # paused: delivered nothing since
    ({"flowRate": None}, 1.0, None, 0.0),  # no rate reported: nothing allowed
])  # fmt: skip
def test_what_the_pump_could_have_delivered_since_its_last_progress(progress, ago_s, sent, seconds):
    assert allowed(progress, ago_s=ago_s, sent=sent) == pytest.approx(RATE * seconds / 60)


def test_a_rate_reported_above_the_order_buys_no_more_than_the_order():
    assert allowed({"flowRate": 1000.0}, ago_s=1.0, rate=2.0) == pytest.approx(2.0 * 1.005 / 60)


def reported(kind: str, payload: dict) -> None:
    pump_report_apply(device_id="PUMP_0001", kind=kind, topic=f"devices/PUMP_0001/{kind}",
                      report=payload_parse(kind, payload), received_at=timezone.now())  # fmt: skip


def ended_by(how: str, session: InfusionSession) -> InfusionSession:
    if how == "completion":  # no summary: the last progress is all that tells what was given
        reported("completion", {"completed": True, "infusionId": session.infusion_id})
    elif how == "status":
        reported("status", {"status": "completed", "infusionId": session.infusion_id})
    else:
        reported("status", {"status": "idle"})
    return InfusionSession.objects.get(pk=session.pk)


@pytest.mark.parametrize("how", ["completion", "status", "idle"])
def test_a_normal_end_whose_final_progress_was_lost_at_999_ml_h_is_completed(how):
    """Its last progress, a second before the end, said 0.28 mL remained; its final one (nothing remaining) was lost.
    Before, the session ended `interrupted` with a high `infusion_interrupted`: a false alarm at every such end."""
    session = running_at({"deliveredVolumeMl": 29.72, "volumeRemainingMl": 0.28, "progressPercent": 99.07}, ago_s=1.0)
    ended = ended_by(how, session)
    alarms = list(Alarm.objects.filter(state=AlarmState.ACTIVE).values_list("type", "message"))
    assert (ended.status, alarms) == (SessionStatus.COMPLETED, []), (
        f"a normal end at 999 mL/h, its final progress lost, ended {ended.status!r} with {alarms}"
    )


@pytest.mark.parametrize("how", ["completion", "status", "idle"])
@pytest.mark.parametrize(("progress", "ago_s"), [
    ({"deliveredVolumeMl": 8.0, "volumeRemainingMl": 22.0}, 1.0),  # the order clearly short (review 44, F3)
    ({"deliveredVolumeMl": 8.0, "volumeRemainingMl": 22.0}, 120.0),  # however long ago
    ({"deliveredVolumeMl": 29.72, "volumeRemainingMl": 0.28}, 0.2),  # more left than 0.2 s could deliver
    ({"deliveredVolumeMl": 8.0, "progressPercent": 26.7}, 1.0),  # told by its percentage only
])  # fmt: skip
def test_more_left_than_the_pump_could_have_delivered_since_still_ends_interrupted(how, progress, ago_s):
    ended = ended_by(how, running_at(progress, ago_s=ago_s))
    assert ended.status == SessionStatus.INTERRUPTED, f"{progress} {ago_s} s before, shown {ended.status!r}"
    assert Alarm.objects.get(type="infusion_interrupted", state=AlarmState.ACTIVE).priority == "high"


def test_a_percentage_short_by_what_the_pump_could_have_delivered_is_completed():
    """The original firmware's percentage, without a remaining figure: 99.1 % of 30 mL leaves 0.27 mL."""
    ended = ended_by("status", running_at({"progressPercent": 99.1}, ago_s=1.0))
    assert ended.status == SessionStatus.COMPLETED


@pytest.mark.parametrize(("progress", "unreported", "finished"), [
    ({"volumeRemainingMl": 0.28}, 0.2775, True), ({"volumeRemainingMl": 0.33}, 0.2775, False),
    ({"progressPercent": 99.1}, 0.2775, True), ({"progressPercent": 99.0}, 0.2775, False),
    ({"volumeRemainingMl": 4.0, "progressPercent": 87}, 0.2775, False), ({"progressPercent": 99.9}, 0.0, False),
])  # fmt: skip
def test_the_idle_rule_allows_what_the_pump_could_have_delivered(progress, unreported, finished):
    assert progress_says_finished(progress, unreported=unreported, planned_ml=30.0) is finished


# ---- review 47, M3: the pump's own final figure judges alone; the allowance is bounded for small orders -----------


def small_order_running_at(planned: float, progress: dict, *, ago_s: float) -> InfusionSession:
    """An order of `planned` mL at 999 mL/h (no bolus) running on PUMP_0001, its last progress `ago_s` s ago."""
    make_device()
    order = make_order(flow_rate_ml_min=RATE, planned_volume_ml=planned, planned_time_min=planned / RATE,
                       bolus_enabled=False)  # fmt: skip
    session = infusion_start(device_id="PUMP_0001", order=order)
    with transaction.atomic():
        session_transition(device=device_lock(device_id="PUMP_0001"), session=session, to=SessionStatus.RUNNING)
    Device.objects.filter(pk=session.device_id).update(
        latest_progress={"status": "running", "flowRate": RATE, **progress},
        latest_progress_at=timezone.now() - timedelta(seconds=ago_s),
    )
    return InfusionSession.objects.get(pk=session.pk)


@pytest.mark.parametrize(("planned", "remaining", "total"), [(30.0, 0.5, 29.5), (5.0, 0.55, 4.45), (2.0, 0.5, 1.0)])
def test_a_completion_whose_own_total_says_short_ends_interrupted(planned, remaining, total):
    """Its last progress, 2 s before, left `remaining` mL at 999 mL/h (within what 2 s could deliver); its summary's
    `totalVolumeMl`, the pump's own final figure, says the order was short. Before, the allowance on the progress
    overrode it: "Completed", no alarm."""
    progress = {"deliveredVolumeMl": planned - remaining, "volumeRemainingMl": remaining}
    session = small_order_running_at(planned, progress, ago_s=2.0)
    reported("completion", {"completed": True, "infusionId": session.infusion_id, "summary": {"totalVolumeMl": total}})
    ended = InfusionSession.objects.get(pk=session.pk)
    alarm = Alarm.objects.filter(type="infusion_interrupted", state=AlarmState.ACTIVE).first()
    assert ended.status == SessionStatus.INTERRUPTED, (
        f"the pump's summary says {total} of {planned} mL given; the record reads {ended.status!r}"
    )
    assert alarm is not None and f"{total:g} of {planned:g} mL given" in alarm.message, alarm and alarm.message


def test_a_completion_whose_own_total_is_the_order_is_completed_whatever_its_last_progress():
    """The pump's final figure says delivered: a last progress 3 s old with 1 mL left (beyond any allowance) is
    older than it."""
    session = small_order_running_at(30.0, {"deliveredVolumeMl": 29.0, "volumeRemainingMl": 1.0}, ago_s=3.0)
    reported("completion", {"completed": True, "infusionId": session.infusion_id, "summary": {"totalVolumeMl": 30.0}})
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.COMPLETED


@pytest.mark.parametrize("how", ["completion", "status", "idle"])
def test_the_allowance_is_at_most_a_twentieth_of_a_small_order(how):
    """2 mL at 999 mL/h, its last progress 2 s before leaving 0.5 mL (a quarter of the order), nothing else told:
    2 s at that rate could deliver 0.56 mL, but no more than a twentieth of the order (0.1 mL) is allowed."""
    session = small_order_running_at(2.0, {"deliveredVolumeMl": 1.5, "volumeRemainingMl": 0.5}, ago_s=2.0)
    ended = ended_by(how, session)
    assert ended.status == SessionStatus.INTERRUPTED, f"a quarter of a 2 mL order left, shown {ended.status!r}"


def test_a_small_order_within_a_twentieth_is_still_allowed():
    session = small_order_running_at(2.0, {"deliveredVolumeMl": 1.92, "volumeRemainingMl": 0.08}, ago_s=1.0)
    assert ended_by("status", session).status == SessionStatus.COMPLETED
