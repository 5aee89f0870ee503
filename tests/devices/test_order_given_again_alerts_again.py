"""The whole order given again after "more than the whole order" was told and acknowledged (review 31, finding 1).

The re-alert of review 29 was spent once the session's divergence said `beyond_planned`: a pump whose count went back
again and gave the order a third time (83.9 mL of a 30 mL order), or that overshot by 0.15 mL (acknowledged) and then
gave the whole order again, alerted nothing, and the alarm kept saying 30.2 mL. Now a count going back alerts again,
and so does the volume delivered in all passing the figure last alerted with by a tenth of the whole order; between
alerts the alarm's text and details restate the figure, without alerting (`devices/services/delivery.py`).
"""

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession, WardSilence
from devices.services.silences import ward_silence
from tests.devices.test_delivered_count_goes_back import _acknowledged, _divergence, _run
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order

pytestmark = pytest.mark.django_db
WHOLE_ORDER_ML = 30.05  # 30 mL, no bolus, with VOLUME_TOLERANCE_ML
RESTATED_WITHIN_ML = 0.01 * WHOLE_ORDER_ML  # the alarm's figure is restated once it is 1 % of the order behind


def _in_all(session: InfusionSession) -> float:
    return InfusionSession.objects.get(pk=session.pk).delivered_in_all_ml


def _beyond_told(capture, device_id: str) -> tuple[InfusionSession, object, int]:
    """A 30 mL order at 2 mL/min: 24 mL, the count back to 0 (re-prime) and told, acknowledged; on to 30 mL, 54 mL in
    all: "more than the whole order" alerted, acknowledged. Returns the session and where the next report goes."""
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=24.0, boot="A", seq=1)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=1.0, boot="A", seq=seq)
    _acknowledged(_divergence(session))
    at, seq = _run(capture, device_id, session, at=at, from_ml=1.2, to_ml=30.0, boot="A", seq=seq)
    beyond = _acknowledged(_divergence(session))
    assert "more than the whole order" in beyond.message, f"precondition: {beyond.message!r}"
    return session, at, seq


def _told_again(alarm: Alarm, before: Alarm, delivered: float, what: str) -> None:
    assert alarm.pk == before.pk and alarm.acknowledged_at is None and alarm.alerts == before.alerts + 1, (
        f"{delivered:.1f} mL delivered in all of a 30 mL order, {what}: must alert again, once (alerts "
        f"{before.alerts} -> {alarm.alerts}, acknowledged {alarm.acknowledged_at}); the alarm says {alarm.message!r}"
    )


def _states_in_all(alarm: Alarm, session: InfusionSession) -> None:
    """The alarm's details and the session's kept divergence say the volume delivered in all (to 1 % of the order)."""
    delivered, kept = _in_all(session), InfusionSession.objects.get(pk=session.pk).delivery_divergence
    stated = alarm.details["deliveredVolumeMl"] + (
        alarm.details.get("deliveredBeforeMl", 0) if alarm.details["kind"] == "count_went_back" else 0
    )
    assert abs(stated - delivered) < RESTATED_WITHIN_ML and kept == alarm.details, (
        f"{delivered:.2f} mL delivered in all; the alarm states {stated} mL ({alarm.message!r}), the session keeps "
        f"{kept}"
    )


def test_the_order_given_a_third_time_after_the_beyond_alert_was_acknowledged_alerts_again(
    django_capture_on_commit_callbacks,
):
    """Review 31's road: the count goes back again after "more than the whole order" was acknowledged, and the pump
    gives the order a third time: 83.9 mL of 30 alerted nothing and the alarm still said 30.2 mL."""
    capture, device_id = django_capture_on_commit_callbacks, "THIRD_RUN"
    session, at, seq = _beyond_told(capture, device_id)
    told = _divergence(session)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=0.0, boot="A", seq=seq)
    went_back = _divergence(session)
    _told_again(went_back, told, _in_all(session), "its count gone back again")
    assert "more than the whole order" in went_back.message and "went back to 0 mL" in went_back.message, (
        went_back.message
    )
    _run(capture, device_id, session, at=at, from_ml=0.2, to_ml=30.0, boot="A", seq=seq)
    alarm = _divergence(session)
    assert alarm.alerts == went_back.alerts, f"still sounding: not alerted at each tenth ({alarm.alerts} alerts)"
    _states_in_all(alarm, session)
    assert _in_all(session) == pytest.approx(84.0, abs=0.5), f"about 24 + 30 + 30 mL: {_in_all(session)}"


def test_the_order_given_again_after_a_small_overshoot_was_acknowledged_alerts_again(
    django_capture_on_commit_callbacks,
):
    """The shorter road: the pump overshoots its 30 mL order by 0.15 mL ("30.17 mL delivered", acknowledged), then its
    count goes back and it gives the whole order again: 60.2 mL with no alert, the text still 30.17 mL."""
    capture, device_id = django_capture_on_commit_callbacks, "OVERSHOOT_THEN_AGAIN"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=30.2, boot="A", seq=1)
    told = _acknowledged(_divergence(session))
    _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=30.0, boot="A", seq=seq)
    alarm = _divergence(session)
    _told_again(alarm, told, _in_all(session), "the count gone back after an acknowledged overshoot")
    _states_in_all(alarm, session)


def test_a_fourth_run_alerts_again_on_the_one_alarm(django_capture_on_commit_callbacks):
    """The third run's alert acknowledged too, the count goes back once more and the pump gives the order a fourth
    time: alerted again, on the pump's one delivery_divergence (never a second alarm), its figure 114 mL."""
    capture, device_id = django_capture_on_commit_callbacks, "FOURTH_RUN"
    session, at, seq = _beyond_told(capture, device_id)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=30.0, boot="A", seq=seq)
    third = _acknowledged(_divergence(session))
    _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=30.0, boot="A", seq=seq)
    alarm = _divergence(session)
    _told_again(alarm, third, _in_all(session), "the order given a fourth time")
    _states_in_all(alarm, session)
    alarms = Alarm.objects.filter(device__device_id=device_id, type="delivery_divergence")
    assert alarms.count() == 1, f"one delivery_divergence per pump, not {list(alarms.values('pk', 'state'))}"


def test_the_alarm_restates_the_volume_delivered_in_all_and_alerts_again_a_tenth_of_the_order_beyond(
    django_capture_on_commit_callbacks,
):
    """An overshoot acknowledged at 30.17 mL, the pump going on: the alarm's text and details follow the volume
    delivered in all without alerting, and alert again once it passes the acknowledged figure by a tenth of the
    order (3 mL): not at each report, not never."""
    capture, device_id = django_capture_on_commit_callbacks, "RESTATED"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=30.2, boot="A", seq=1)
    told = _acknowledged(_divergence(session))
    at, seq = _run(capture, device_id, session, at=at, from_ml=30.34, to_ml=33.0, boot="A", seq=seq)
    restated = _divergence(session)
    assert (restated.alerts, restated.acknowledged_at) == (told.alerts, told.acknowledged_at), (
        f"{_in_all(session):.2f} mL, within a tenth of the order beyond the acknowledged 30.17 mL: no alert "
        f"(alerts {told.alerts} -> {restated.alerts})"
    )
    _states_in_all(restated, session)
    assert f"{restated.details['deliveredVolumeMl']:g} mL delivered" in restated.message, restated.message
    _run(capture, device_id, session, at=at, from_ml=33.17, to_ml=33.4, boot="A", seq=seq)
    alarm = _divergence(session)
    _told_again(alarm, restated, _in_all(session), "a tenth of the order beyond the acknowledged 30.17 mL")
    _states_in_all(alarm, session)


def test_a_count_gone_back_while_the_alarm_still_sounds_is_its_text_and_breaks_the_silence_not_its_escalation(
    django_capture_on_commit_callbacks,
):
    """The overshoot's alarm still sounding (unacknowledged, escalated once) in a silenced ward: the count goes back.
    Its text says so and the silence is broken, but it is not alerted again: its escalation goes on from where it is,
    and the nurse's acknowledgement on its way (of the alert she heard) is not refused."""
    capture, device_id = django_capture_on_commit_callbacks, "SOUNDING_NEWS"
    device = make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=30.2, boot="A", seq=1)
    sounding = _divergence(session)
    Alarm.objects.filter(pk=sounding.pk).update(escalation_level=1, escalated_at=at)  # the charge nurse was called
    silence = ward_silence(ward=device.ward, user=make_user("charge"), seconds=120, now=at)
    _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=0.0, boot="A", seq=seq)
    alarm = _divergence(session)
    assert "went back to 0 mL" in alarm.message and "more than the whole order" in alarm.message, alarm.message
    assert (alarm.alerts, alarm.escalation_level) == (sounding.alerts, 1), (
        f"still sounding: not alerted again, its escalation not restarted (alerts {sounding.alerts} -> "
        f"{alarm.alerts}, escalation level {alarm.escalation_level})"
    )
    assert WardSilence.objects.get(pk=silence.pk).end_reason == "broken", "the news must be heard through the silence"
    assert _acknowledged(alarm).acknowledged_at is not None, "the acknowledgement of the alert heard is not refused"
