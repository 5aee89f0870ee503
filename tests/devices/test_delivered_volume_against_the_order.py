"""The delivered volume a pump reports against its order (review 19, finding 2): `delivery_divergence`.

The read-back compared a confirmation's parameters and each running report's `flowRate` with the order; the volume the
pump reports delivered (`deliveredVolumeMl`, `volumeRemainingMl`) was stored, sampled and charted, and never compared:
a pump whose `flowRate` field says the programmed rate (many report the setpoint, not a measurement) while its
delivered volume climbs at ten times the order (a wrong syringe size, a firmware unit slip) showed "Pump confirmed the
order: parameters match" with no alarm until the bag was empty; and a pump reporting more delivered than the whole
order raised nothing either. Each report goes through the bridge's batch ingest (`tests/support/ingest.py`).
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, InfusionSession
from devices.services.alarm_rules import alarm_resolve
from devices.services.alarms import alarm_acknowledge
from devices.services.sessions import infusion_start
from protocol.payload_codec import payload_to_wire
from realtime.simulator.legacy import LegacyFirmware
from realtime.simulator.modern import ModernFirmware
from realtime.simulator.pump import Infusion, Order
from tests.clinical.scenario import legacy_steps
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import confirmed_order, ingest, report, send

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip
DIVERGENCE_ALARMS = {"parameter_mismatch", "delivery_divergence", "dose_limit_exceeded"}


def alarms_of(session: InfusionSession) -> set[str]:
    return set(Alarm.objects.filter(device=session.device, state="active").values_list("type", flat=True))


def test_a_volume_climbing_at_ten_times_the_order_beside_the_ordered_rate_is_alarmed(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("DIVERGE", has_presence=True)
    session = confirmed_order("DIVERGE", parameters=READ_BACK)  # 2 mL/min (120 mL/h) ordered, confirmed: match
    for second in range(0, 61, 5):  # a minute of reports: 20 mL/min delivered, "flowRate": 2.0 reported
        delivered = 5.0 + 20.0 * second / 60
        send(capture, "DIVERGE", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": delivered,
                                              "volumeRemainingMl": max(0.0, 30.0 - delivered),
                                              "infusionId": session.infusion_id}, second)  # fmt: skip
    session.refresh_from_db()
    assert DIVERGENCE_ALARMS & alarms_of(session), (
        f"20 mL delivered in one minute of an order of 2 mL/min (the pump's rate field says 2.0): read-back "
        f"{session.read_back}, active alarms {sorted(alarms_of(session))}"
    )


def test_more_delivered_than_the_whole_order_is_alarmed(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("OVERDOSE", has_presence=True)
    session = confirmed_order("OVERDOSE", parameters=READ_BACK)  # 30 mL in all (its 5 mL bolus included)
    for step, delivered in enumerate((10.0, 20.0, 30.0, 40.0, 50.0)):
        send(capture, "OVERDOSE", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": delivered,
                                               "infusionId": session.infusion_id}, 300 * step)  # fmt: skip
    session.refresh_from_db()
    assert DIVERGENCE_ALARMS & alarms_of(session), (
        f"the pump reports 50 mL delivered of an order of 30 mL, still running: read-back {session.read_back}, active "
        f"alarms {sorted(alarms_of(session))}"
    )


# ---- what it raises, and how long it stays ----------------------------------------------------------------------


def resolver():
    user = make_user("charge")
    user.user_permissions.add(Permission.objects.get(codename="resolve_alarm"))
    return user


def _divergence(session: InfusionSession) -> Alarm | None:
    return Alarm.objects.filter(session=session, type="delivery_divergence", state="active").first()


def _run(capture, device_id: str, session: InfusionSession, reports: list[tuple[float, dict]]) -> InfusionSession:
    """Each report (its receive time in seconds from now, its body) in a batch of its own, naming the session."""
    now = timezone.now()
    for second, body in reports:
        ingest([report(device_id, "progress", {"infusionId": session.infusion_id, **body},
                       at=now + timedelta(seconds=second))], capture)  # fmt: skip
    return InfusionSession.objects.get(pk=session.pk)


def _steady(rate_ml_min: float, seconds: int, *, start_ml: float = 5.0, every: int = 1, t0: float = 0.0,
            status: str = "running", **fields) -> list[tuple[float, dict]]:  # fmt: skip
    """Running reports `every` seconds, the delivered volume growing at `rate_ml_min`."""
    return [(t0 + second, {"status": status, "deliveredVolumeMl": round(start_ml + rate_ml_min * second / 60, 2),
                           **fields}) for second in range(0, seconds + 1, every)]  # fmt: skip


def test_ten_times_the_rate_raises_a_high_delivery_divergence_and_the_read_back_is_no_longer_a_match(
    django_capture_on_commit_callbacks, caplog
):
    make_device("DIV_10X")
    session = confirmed_order("DIV_10X", parameters=READ_BACK)
    assert session.read_back == "match"
    session = _run(django_capture_on_commit_callbacks, "DIV_10X", session, _steady(20.0, 70, flowRate=2.0))
    alarm = _divergence(session)
    assert alarm is not None and alarm.priority == "high" and alarm.source == "server", _alarms(session)
    assert alarm.count == 1, "raised once, not counted at every report while active"
    assert "faster than the rate it reports" in alarm.message, alarm.message
    assert session.read_back == "mismatch", "the panel must not say 'parameters match' beside the alarm"
    assert session.delivery_divergence["kind"] == "faster_than_rate", session.delivery_divergence
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "judged on the bulk path, not its fallback"
    shown = payload_to_wire(payloads.session_body(session))["session"]
    assert shown["readBack"] == "mismatch" and shown["deliveryDivergence"]["kind"] == "faster_than_rate", shown
    assert shown["deliveryDivergence"]["grewMl"] > 19 and shown["deliveryDivergence"]["overMin"] >= 1.0, shown


def test_ten_times_the_rate_alarms_on_the_one_message_path_too(monkeypatch, django_capture_on_commit_callbacks):
    """Routine progress applied one by one (the bridge's fallback when the bulk path fails): the same windows, kept in
    the same session columns, judged the same."""

    def broken(items):
        raise RuntimeError("bulk path failed")

    monkeypatch.setattr("realtime.bridge.batch.routine_progress_ingest", broken)
    make_device("DIV_ONE_BY_ONE")
    session = confirmed_order("DIV_ONE_BY_ONE", parameters=READ_BACK)
    session = _run(django_capture_on_commit_callbacks, "DIV_ONE_BY_ONE", session, _steady(20.0, 70, flowRate=2.0))
    assert _divergence(session) is not None and session.read_back == "mismatch", _alarms(session)
    assert session.delivery_divergence["kind"] == "faster_than_rate", session.delivery_divergence


def test_more_than_the_whole_order_stays_alarmed_after_the_session_ends_and_comes_back_after_a_resolve(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("DIV_OVER")
    session = confirmed_order("DIV_OVER", parameters=READ_BACK)  # 30 mL with a 5 mL bolus: at most 35.05 mL
    session = _run(capture, "DIV_OVER", session, [(0, {"status": "running", "deliveredVolumeMl": 35.05})])
    assert _divergence(session) is None, "35.05 mL is the whole order, the bolus counted twice as the original does"
    session = _run(capture, "DIV_OVER", session, [(1, {"status": "running", "deliveredVolumeMl": 35.2}),
                                                  (2, {"status": "running", "deliveredVolumeMl": 35.3})])  # fmt: skip
    alarm = _divergence(session)
    assert alarm is not None and alarm.count == 1 and "more than the whole order" in alarm.message, _alarms(session)
    alarm_resolve(alarm_id=alarm.pk, user=resolver(), reason="checked_at_pump", alerts=alarm.alerts)
    session = _run(capture, "DIV_OVER", session, [(3, {"status": "running", "deliveredVolumeMl": 35.4})])
    again = _divergence(session)
    assert again is not None and again.pk != alarm.pk, "still infusing beyond the order after a resolve: raised again"
    send(capture, "DIV_OVER", "completion", {"completed": True, "infusionId": session.infusion_id}, 4)
    session.refresh_from_db()
    assert session.status == "completed" and _divergence(session) is not None, (
        "what was delivered stays delivered: the session's end does not clear it"
    )


def test_an_alarm_left_active_by_an_ended_session_does_not_hide_the_next_sessions(django_capture_on_commit_callbacks):
    """The first order's alarm stays active after its end (resolve-only); the next order on the pump, off its own
    order, gets its own alarm: the memo of active ones is per session, not per pump."""
    capture = django_capture_on_commit_callbacks
    make_device("DIV_NEXT")
    first = confirmed_order("DIV_NEXT", parameters=READ_BACK)
    first = _run(capture, "DIV_NEXT", first, [(0, {"status": "running", "deliveredVolumeMl": 40.0})])
    send(capture, "DIV_NEXT", "completion", {"completed": True, "infusionId": first.infusion_id}, 1)
    second = confirmed_order("DIV_NEXT", parameters=READ_BACK)
    second = _run(capture, "DIV_NEXT", second, [(2, {"status": "running", "deliveredVolumeMl": 41.0})])
    assert _divergence(first) is not None and _divergence(second) is not None, (_alarms(first), _alarms(second))


def test_a_confirmation_after_a_restart_does_not_read_match_beside_the_active_alarm(django_capture_on_commit_callbacks):
    """40 mL of a 30 mL order reported (alarmed); the pump restarts and runs the order again (read-back unverified: a
    restart voids what was verified), then confirms it as ordered: the alarm is still active, so not "match"."""
    capture = django_capture_on_commit_callbacks
    make_device("DIV_RECONFIRMED")
    session = confirmed_order("DIV_RECONFIRMED", parameters=READ_BACK)
    body = {"status": "running", "flowRate": 2.0, "infusionId": session.infusion_id}
    before, after = (
        {**body, "deliveredVolumeMl": 40.0, "bootId": "b1"},
        {**body, "deliveredVolumeMl": 0.1, "bootId": "b2"},
    )
    session = _run(capture, "DIV_RECONFIRMED", session, [(0, before), (1, after)])
    assert (session.status, session.read_back) == ("running", "unverified"), (session.status, session.read_back)
    send(capture, "DIV_RECONFIRMED", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                                  "parameters": READ_BACK, "bootId": "b2"}, 2)  # fmt: skip
    session.refresh_from_db()
    assert _divergence(session) is not None and session.read_back == "mismatch", (session.read_back, _alarms(session))


def test_paused_or_completed_progress_beyond_the_order_alarms_on_the_one_message_path(
    django_capture_on_commit_callbacks,
):
    make_device("DIV_PAUSED")
    session = confirmed_order("DIV_PAUSED", parameters=READ_BACK)
    session = _run(django_capture_on_commit_callbacks, "DIV_PAUSED", session,
                   [(0, {"status": "paused", "deliveredVolumeMl": 50.0})])  # fmt: skip
    assert _divergence(session) is not None, _alarms(session)


def test_a_retained_copy_or_a_report_about_another_infusion_never_alarms(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("DIV_OTHER")
    session = confirmed_order("DIV_OTHER", parameters=READ_BACK)
    now = timezone.now()
    copy = {"status": "running", "deliveredVolumeMl": 80.0, "infusionId": session.infusion_id}
    ingest([report("DIV_OTHER", "progress", copy, at=now, retain=True)], capture)
    ingest([report("DIV_OTHER", "progress", {"status": "running", "deliveredVolumeMl": 80.0,
                                             "infusionId": "inf_another"}, at=now)], capture)  # fmt: skip
    for second, delivered in ((1, 5.0), (70, 80.0)):  # a minute apart: the other infusion's volume in between
        ingest([report("DIV_OTHER", "progress", {"status": "running", "deliveredVolumeMl": delivered,
                                                 "infusionId": "inf_another"}, at=now + timedelta(seconds=second))],
               capture)  # fmt: skip
    assert _divergence(session) is None, _alarms(session)


# ---- what must not alarm ------------------------------------------------------------------------------------


def _simulated(capture, firmware, order: Order, *, speed: float, seconds: int) -> None:
    """The simulator's firmware (`realtime/simulator/`) running `order` from its confirmation: a progress (and what
    the firmware sends with it) every real second, `speed` simulated seconds each, until done or `seconds`."""
    infusion, now = Infusion(order), timezone.now()

    def apply(messages, second: float) -> None:
        ingest([report("", "", message.payload, topic=message.topic, retain=message.retain,
                       at=now + timedelta(seconds=second)) for message in messages], capture)  # fmt: skip

    apply(firmware.received_start(order), 0)
    apply(firmware.accepted(infusion), 0.5)
    for second in range(1, seconds + 1):
        infusion.advance(speed / 60)
        if infusion.done:
            apply(firmware.completed(infusion), second)
            return
        apply(firmware.progress(infusion), second)


def _sim_order(session: InfusionSession) -> Order:
    return Order(flow_rate_ml_min=session.flow_rate_ml_min, planned_volume_ml=session.planned_volume_ml,
                 planned_time_min=session.planned_time_min, bolus_enabled=session.bolus_enabled,
                 bolus_volume_ml=session.bolus_volume_ml, infusion_id=session.infusion_id)  # fmt: skip


@pytest.mark.parametrize("firmware", [ModernFirmware, LegacyFirmware])
def test_a_simulated_run_to_its_end_never_alarms(firmware, django_capture_on_commit_callbacks):
    """The simulator at real time (`make run`): 12 mL at 2 mL/min with a 2 mL bolus pushed first at 90 mL/min, a
    progress a second to completion (the original firmware's final progress counting the bolus twice)."""
    make_device("DIV_SIM")
    session = infusion_start(device_id="DIV_SIM", order=make_order(planned_volume_ml=12.0, planned_time_min=6.0,
                                                                  bolus_volume_ml=2.0))  # fmt: skip
    _simulated(django_capture_on_commit_callbacks, firmware("DIV_SIM"), _sim_order(session), speed=1, seconds=400)
    session.refresh_from_db()
    assert session.status == "completed", session.status
    assert session.read_back == "match" and _divergence(session) is None, _alarms(session)
    assert session.delivery_window_at is not None, "the windows were judged (a test that cannot fail is a defect)"


def test_a_simulator_run_faster_than_real_time_is_a_fast_pump(django_capture_on_commit_callbacks):
    """`--speed 10`: ten times the volume per real second, and ten times the pumping time in `elapsedTimeMin`. It was
    judged by the pump's own time and not alarmed; that is exactly a pump whose timebase runs fast, which hid a
    tenfold overspeed (review 27, finding 1): the server's receive times judge it now, and it is alarmed."""
    make_device("DIV_FAST")
    session = infusion_start(device_id="DIV_FAST", order=make_order(planned_volume_ml=60.0, planned_time_min=30.0))
    _simulated(django_capture_on_commit_callbacks, ModernFirmware("DIV_FAST"), _sim_order(session), speed=10,
               seconds=200)  # fmt: skip
    session.refresh_from_db()
    assert _divergence(session) is not None, _alarms(session)
    assert session.delivery_divergence["kind"] == "faster_than_rate", session.delivery_divergence


def test_the_original_firmwares_recorded_infusion_never_alarms(django_capture_on_commit_callbacks):
    """`legacy-firmware.json` as recorded (its uptime clock for the receive times): bolus, confirmation, progress, a
    pause at the pump, an air bubble, and the final progress saying 35 mL delivered of a 30 mL order (bolus twice)."""
    capture = django_capture_on_commit_callbacks
    make_device("DIV_LEGACY")
    session = infusion_start(device_id="DIV_LEGACY", order=make_order())
    now, at_ms = timezone.now(), 0
    for step in legacy_steps("infusion", session.infusion_id, "DIV_LEGACY"):
        clock = step["payload"].get("timestamp", step["payload"].get("confirmedAt"))
        at_ms = clock if isinstance(clock, int) and clock > at_ms else at_ms + 10
        ingest([report("", "", step["payload"], topic=step["topic"], retain=step["retain"],
                       at=now + timedelta(milliseconds=at_ms))], capture)  # fmt: skip
    session.refresh_from_db()
    assert session.status == "completed", session.status
    assert session.read_back == "match" and _divergence(session) is None, _alarms(session)


def test_a_titration_the_pump_reports_in_its_progress_is_the_rate_mismatchs_not_this(
    django_capture_on_commit_callbacks,
):
    """The rate doubled at the bedside after 40 s: its progress says 4 mL/min and delivers so. `parameter_mismatch`
    tells it; the delivered volume follows the rate the pump reports, so no `delivery_divergence`."""
    make_device("DIV_TITRATE")
    session = confirmed_order("DIV_TITRATE", parameters=READ_BACK)
    reports = _steady(2.0, 40, flowRate=2.0)
    reports += _steady(4.0, 140, start_ml=reports[-1][1]["deliveredVolumeMl"], t0=41, flowRate=4.0)
    session = _run(django_capture_on_commit_callbacks, "DIV_TITRATE", session, reports)
    assert _active_types(session) == ["parameter_mismatch"], _alarms(session)


def test_a_titration_reported_by_a_new_confirmation_with_progress_naming_no_rate_does_not_alarm(
    django_capture_on_commit_callbacks,
):
    """A pump whose progress leaves `flowRate` out: the rate it runs is what it confirmed last (4 mL/min, a new
    confirmation after a change at its screen: read back as a mismatch); the delivered volume follows it."""
    capture = django_capture_on_commit_callbacks
    make_device("DIV_RECONFIRM")
    session = confirmed_order("DIV_RECONFIRM", parameters=READ_BACK)
    send(capture, "DIV_RECONFIRM", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                                "parameters": {**READ_BACK, "flowRateMlMin": 4.0}})  # fmt: skip
    session = _run(capture, "DIV_RECONFIRM", session, _steady(4.0, 150))
    assert session.delivery_window_at is not None
    assert _active_types(session) == ["parameter_mismatch"], _alarms(session)


def test_a_pause_and_resume_at_the_pump_does_not_count_the_paused_time(django_capture_on_commit_callbacks):
    """A minute running, paused at the pump for two minutes (nothing sent meanwhile, as the original does), resumed:
    the window starts anew at the resume; and a pause the pump never reported (a silence) is not counted either."""
    capture = django_capture_on_commit_callbacks
    make_device("DIV_PAUSE")
    session = confirmed_order("DIV_PAUSE", parameters=READ_BACK)
    first = _steady(2.0, 50, flowRate=2.0)
    session = _run(capture, "DIV_PAUSE", session, first)
    send(capture, "DIV_PAUSE", "actions", {"action": "MANUAL_PAUSE", "infusionId": session.infusion_id}, 51)
    send(capture, "DIV_PAUSE", "actions", {"action": "MANUAL_RESUME", "infusionId": session.infusion_id}, 170)
    delivered = first[-1][1]["deliveredVolumeMl"]
    resumed = _steady(2.0, 50, start_ml=delivered, t0=171, flowRate=2.0)
    unreported = _steady(2.0, 100, start_ml=resumed[-1][1]["deliveredVolumeMl"], t0=300, flowRate=2.0)
    session = _run(capture, "DIV_PAUSE", session, resumed + unreported)
    assert _divergence(session) is None, _alarms(session)
    control = _run(capture, "DIV_PAUSE", session, _steady(2.0, 70, start_ml=40.0, t0=410, flowRate=2.0)[1:])
    assert _divergence(control) is not None, "control: the same windows would see 10 mL more than the order"


def test_a_restart_resuming_the_order_with_its_count_from_zero_is_a_count_gone_back_not_a_fast_pump(
    django_capture_on_commit_callbacks,
):
    """A pump restarts mid-infusion (a new `bootId`): the order is interrupted; it runs it again, counting the
    delivered volume from 0 (a count that goes back starts a new window), then going on from a higher count. This
    test said "does not alarm": a count from 0 hides what was delivered, so it is now told as such (review 27,
    finding 2), and still never as a fast pump; what was delivered in all is each run's highest count, summed."""
    capture = django_capture_on_commit_callbacks
    make_device("DIV_BOOT")
    session = confirmed_order("DIV_BOOT", parameters=READ_BACK)
    now = timezone.now()

    def progress(second: float, delivered: float, boot: str) -> None:
        ingest([report("DIV_BOOT", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": delivered,
                                                "infusionId": session.infusion_id, "bootId": boot},
                       at=now + timedelta(seconds=second))], capture)  # fmt: skip

    for second in range(0, 50):
        progress(second, 5.0 + second / 30, "boot-1")
    for second in range(50, 200):  # restarted at 50 s: interrupted, then running again on its evidence
        progress(second, (second - 50) / 30, "boot-2")
    for second in range(200, 320):  # and once more, going on from its count
        progress(second, 5.0 + (second - 50) / 30, "boot-3")
    session.refresh_from_db()
    assert session.status == "running", session.status
    assert session.delivery_divergence["kind"] == "count_went_back", session.delivery_divergence
    assert session.delivery_divergence["deliveredBeforeMl"] == pytest.approx(5.0 + 49 / 30, abs=0.01)
    assert session.delivered_in_all_ml == pytest.approx(5.0 + 49 / 30 + 5.0 + 269 / 30, abs=0.01), (
        "6.63 mL before the restart, then a run counting up to 13.97 mL"
    )


def test_reports_queued_while_the_bridge_was_away_and_received_at_once_do_not_look_fast(
    django_capture_on_commit_callbacks,
):
    """A pump that sends neither `elapsedTimeMin` nor a clock: 20 s live, then 90 s of its reports queued while the
    bridge was away and received within 0.1 s, then live again. Their receive times say nothing of when they were
    measured: the window waits for the reports to come about a second apart again."""
    make_device("DIV_BURST")
    session = confirmed_order("DIV_BURST", parameters=READ_BACK)
    live = _steady(2.0, 20, flowRate=2.0)
    queued = [(100 + index * 0.001, body) for index, (_, body) in enumerate(_steady(2.0, 90, t0=21, flowRate=2.0))]
    queued = [(second, {**body, "deliveredVolumeMl": round(5.0 + 2.0 * (21 + index) / 60, 2)})
              for index, (second, body) in enumerate(queued)]  # fmt: skip
    after = [(101 + second, {"status": "running", "flowRate": 2.0,
                             "deliveredVolumeMl": round(5.0 + 2.0 * (111 + second) / 60, 2)})
             for second in range(0, 150)]  # fmt: skip
    session = _run(django_capture_on_commit_callbacks, "DIV_BURST", session, live + queued + after)
    assert _divergence(session) is None, _alarms(session)


def _active_types(session: InfusionSession) -> list[str]:
    return sorted(Alarm.objects.filter(session=session, state="active").values_list("type", flat=True))


def _alarms(session: InfusionSession) -> list[tuple[str, str, str]]:
    return sorted(Alarm.objects.filter(session=session).values_list("type", "state", "message"))


def test_more_than_the_whole_order_after_an_acknowledged_overspeed_alerts_again(django_capture_on_commit_callbacks):
    """A pump delivering ten times its rate is alarmed within a minute (`faster_than_rate`) and the nurse acknowledges
    it; the pump goes on past the whole order (30 mL and its 5 mL bolus): the overdose the alarm warned of is a fact,
    and it alerts again saying so (review 29, finding 1: an active divergence of another kind swallowed it)."""
    capture = django_capture_on_commit_callbacks
    make_device("OVERSPEED_THEN_BEYOND", has_presence=True)
    session = confirmed_order("OVERSPEED_THEN_BEYOND", parameters=READ_BACK)
    running = {"status": "running", "flowRate": 2.0, "infusionId": session.infusion_id}
    for second in range(0, 61, 5):  # 20 mL/min delivered, "flowRate": 2.0 reported
        send(capture, "OVERSPEED_THEN_BEYOND", "progress", {**running, "deliveredVolumeMl": 5.0 + second / 3}, second)
    fast = Alarm.objects.get(session=session, type="delivery_divergence", state="active")
    assert "faster than the rate" in fast.message, f"precondition: the overspeed alarmed: {fast.message!r}"
    nurse = make_user("overspeed-nurse")
    nurse.user_permissions.add(Permission.objects.get(codename="acknowledge_alarm"))
    alarm_acknowledge(alarm_id=fast.pk, user=nurse, alerts=fast.alerts)
    for second in range(65, 96, 5):  # on to 35 mL (the whole order with its bolus), then beyond it
        send(capture, "OVERSPEED_THEN_BEYOND", "progress", {**running, "deliveredVolumeMl": 5.0 + second / 3}, second)
    alarm = Alarm.objects.get(pk=fast.pk)
    assert alarm.acknowledged_at is None and alarm.alerts == fast.alerts + 1, (
        f"35 mL delivered of a 30 mL order with a 5 mL bolus, the overspeed acknowledged: alerts {fast.alerts} -> "
        f"{alarm.alerts}, {alarm.message!r}"
    )
    assert "more than the whole order" in alarm.message, alarm.message
