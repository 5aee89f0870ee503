"""Unit tests of the clinical rules: limits, restart detection, evidence, the idle rule, command ends, one intent."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.forms import InfusionOrderForm
from devices.models import Alarm, Command, Device, InfusionSession
from devices.services.changes import device_lock
from devices.services.command_deadlines import commands_end_overdue
from devices.services.evidence import is_evidence_for
from devices.services.orders import order_validate
from devices.services.requests import infusion_record_end, infusion_request, infusion_time_out
from devices.services.restarts import (
    UPTIME_BELIEVED_MAX_MS,
    progress_says_finished,
    pump_restart_detect,
    session_end_on_idle,
)
from devices.services.sessions import infusion_start, session_transition
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from protocol.limits import MAX_BOLUS_SHARE, MAX_TIME_MIN, MAX_VOLUME_ML, order_limits_check
from protocol.schemas import payload_parse
from tests.factories import make_device, make_order, make_user


@pytest.mark.parametrize(("order", "field"), [
    ({"flow_rate_ml_min": 0.09 / 60}, "flow_rate_ml_min"),
    ({"flow_rate_ml_min": 1000 / 60}, "flow_rate_ml_min"),
    ({"flow_rate_ml_min": 1.0, "pump_max_rate_ml_min": 0.5}, "flow_rate_ml_min"),
    ({"planned_time_min": MAX_TIME_MIN + 1}, "planned_time_min"),
    ({"planned_volume_ml": MAX_VOLUME_ML + 0.01}, "planned_volume_ml"),
    ({"bolus_volume_ml": 15.01}, "bolus_volume_ml"),
    ({"bolus_volume_ml": 6.0, "pump_max_bolus_ml": 5.0}, "bolus_volume_ml"),
])  # fmt: skip
def test_global_limits_name_the_field_they_refuse(order, field):
    base = {"flow_rate_ml_min": 2.0, "planned_time_min": 15.0, "planned_volume_ml": 30.0}
    breach = order_limits_check(**{**base, **order})
    assert breach is not None and breach.field == field


def test_global_limits_accept_their_edges():
    assert order_limits_check(flow_rate_ml_min=0.1 / 60, planned_time_min=MAX_TIME_MIN, planned_volume_ml=16.8,
                              bolus_volume_ml=8.4) is None  # fmt: skip
    assert order_limits_check(flow_rate_ml_min=999 / 60, planned_time_min=1, planned_volume_ml=16.65) is None


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "field"), [
    ({"rate_ml_h": 0.1, "volume_ml": 1000}, "time_min"),  # 588,235 min: the pipe cannot carry it
    ({"rate_ml_h": 120, "volume_ml": 30, "bolus_enabled": "on", "bolus_volume_ml": 30}, "bolus_volume_ml"),
    ({"rate_ml_h": 1100, "volume_ml": 100}, "rate_ml_h"),
])  # fmt: skip
def test_the_order_form_refuses_what_the_limits_refuse(data, field):
    form = InfusionOrderForm(
        {**data, "drug": "Saline", "patient_skipped": "on", "confirm": "start"}, device=make_device()
    )
    assert not form.is_valid() and field in form.errors, form.errors


@pytest.mark.django_db
def test_the_services_refuse_a_bolus_of_the_whole_volume():
    with pytest.raises(PumpStreamError) as refused:
        order_validate(make_order(bolus_volume_ml=30.0), make_device())
    assert refused.value.field == "bolus_volume_ml"


@pytest.mark.django_db
@pytest.mark.parametrize("drug", ["", "   ", "\u200b\u200d", "x" * 101])
def test_the_services_refuse_an_order_naming_no_drug(drug):
    """Not only the wizard's form: any caller of `infusion_start` (an API client, a script) names what runs."""
    with pytest.raises(PumpStreamError) as refused:
        order_validate(make_order(drug=drug), make_device())
    assert refused.value.field == "drug"


@pytest.mark.django_db
def test_an_orders_texts_keep_no_direction_control():
    """A drug or patient's name is shown inside the server's words (the monitor's "Heparin — rejected at the pump"):
    an override left open (U+202E) turned the words after it around (review 37, finding 8), from any caller."""
    make_device("DRUG_BIDI")
    order = make_order(drug="Heparin\u202e 5000 units", patient={"name": "Ann\u2067 Lee", "bed": "4\u200f"})
    session = infusion_start(device_id="DRUG_BIDI", order=order, idempotency_key="drug-bidi")
    assert (session.drug, session.patient_name, session.patient_bed) == ("Heparin 5000 units", "Ann Lee", "4")
    again = infusion_start(device_id="DRUG_BIDI", order=order, idempotency_key="drug-bidi")  # its reply lost
    assert again.pk == session.pk, "the same order repeated is no longer recognised as the order it placed"


@pytest.mark.django_db
def test_a_persons_reasons_keep_no_direction_control():
    """A pause or stop's reason is logged inside the server's words ("nurse asked the pump to pause (<reason>)"), an
    ended record's in the session's ("record ended by nurse: <reason>"): an override left open in it turned the words
    after it around, as a drug's did (review 39)."""
    session, nurse = running(), make_user("nurse")
    pause = infusion_request(device_id="PUMP_0001", kind=PAUSE, infusion_id=session.infusion_id, user=nurse,
                             reason="line check\u202e")  # fmt: skip
    logged = session.device.events.get(kind="user.pause_infusion")
    assert (pause.payload["reason"], logged.payload["reason"]) == ("line check", "line check")
    infusion_record_end(infusion_id=session.infusion_id, user=nurse, reason="pump swapped\u202e")
    assert InfusionSession.objects.get(pk=session.pk).status_reason == "record ended by nurse: pump swapped"
    with pytest.raises(PumpStreamError):  # a reason of direction controls alone shows nothing
        infusion_record_end(infusion_id=running("PUMP_0002").infusion_id, user=nurse, reason="\u202e\u200f")


def test_the_bridge_accepts_the_largest_order():
    progress = payload_parse("progress", {"timeRemainingMin": MAX_TIME_MIN, "flowRate": 999 / 60,
                                          "elapsedTimeMin": MAX_TIME_MIN, "status": "running"})  # fmt: skip
    assert progress.timeRemainingMin == MAX_TIME_MIN
    confirmation = payload_parse("infusion", {"infusionId": "inf_1", "confirmed": True, "parameters": {
        "flowRateMlMin": 0.1 / 60, "plannedTimeMin": MAX_TIME_MIN, "plannedVolumeMl": 16.8}})  # fmt: skip
    assert confirmation.parameters.plannedTimeMin == MAX_TIME_MIN


@pytest.mark.django_db
def test_an_order_beyond_what_the_wire_carries_is_refused_whatever_the_pump_is_registered_for():
    """Review 27: a 12,000 mL order on a pump registered for 20,000 mL was placed, and every report of it refused by
    the wire's bound (10,000 mL): no progress shown for its first 10 L."""
    order = make_order(flow_rate_ml_min=16.0, planned_volume_ml=12_000.0, planned_time_min=750.0)
    with pytest.raises(PumpStreamError) as refused:
        order_validate(order, make_device(max_volume_ml=20_000.0))
    assert refused.value.field == "planned_volume_ml"


def test_the_bridge_accepts_the_largest_volume_an_order_may_have():
    """The largest order's reports, a legacy pump's totals counting its bolus twice, and its read-back."""
    counted = MAX_VOLUME_ML * (1 + MAX_BOLUS_SHARE)
    progress = payload_parse("progress", {"deliveredVolumeMl": counted, "volumeRemainingMl": MAX_VOLUME_ML,
                                          "status": "running"})  # fmt: skip
    assert progress.deliveredVolumeMl == counted
    parameters = {
        "flowRateMlMin": 999 / 60,
        "plannedTimeMin": MAX_VOLUME_ML / (999 / 60),
        "plannedVolumeMl": MAX_VOLUME_ML,
    }
    confirmation = payload_parse("infusion", {"infusionId": "inf_1", "confirmed": True, "parameters": parameters})
    assert confirmation.parameters.plannedVolumeMl == MAX_VOLUME_ML


PAUSE = CommandKind.PAUSE_INFUSION
HEARD_AT = timezone.now()


def pump(**fields):
    return SimpleNamespace(boot_id=fields.get("boot_id", ""), last_uptime_ms=fields.get("last_uptime_ms"),
                           last_uptime_at=HEARD_AT)  # fmt: skip


@pytest.mark.parametrize(("device", "report", "restarted"), [
    (pump(boot_id="b1"), {"boot_id": "b2"}, True),
    (pump(boot_id="b1"), {"boot_id": "b1"}, False),
    (pump(), {"boot_id": "b1"}, False),  # the first bootId ever heard is no restart
    (pump(boot_id="b1"), {"boot_id": "b2", "retained": True}, False),  # retained replays never count
    (pump(last_uptime_ms=900_000), {"timestamp": 4215}, True),
    (pump(last_uptime_ms=900_000), {"timestamp": 899_500}, False),  # clock jitter
    (pump(last_uptime_ms=900_000), {"timestamp": 4215, "retained": True}, False),
    (pump(last_uptime_ms=900_000), {"timestamp": "0:01:45.120"}, False),  # H:M:S text is not compared
    (pump(), {"kind": "test", "timestamp": 4210}, True),
    (pump(last_uptime_ms=2**32 - 120_000), {"timestamp": 1_680_000, "after_s": 1800}, False),  # wrapped while paused
    (pump(last_uptime_ms=2**32 - 120_000), {"timestamp": 4215, "after_s": 1800}, True),  # rebooted meanwhile
    # a pump reusing its bootId: its status's `uptime` alone, going back beyond the reordering tolerance (60 s)
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b1", "uptime": 2_500}, True),
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b1", "uptime": 560_000}, False),  # a late status
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b1", "uptime": 2_500, "retained": True}, False),
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b1", "uptime": 2_500, "after_s": 0}, False),  # not after
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b1", "timestamp": 2_500}, False),  # `timestamp`: not
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b1", "uptime": "0:00:02.500"}, False),  # text: not
    (pump(boot_id="b1", last_uptime_ms=600_000), {"boot_id": "b2", "uptime": 900_000}, True),  # a new bootId
    (pump(boot_id="b1", last_uptime_ms=2**32 - 600_000), {"boot_id": "b1", "uptime": 1_200_000, "after_s": 7200},
     False),  # millis() wrapped, the status queued at the broker through a bridge outage
    (pump(boot_id="b1", last_uptime_ms=2**32 - 600_000), {"boot_id": "b1", "uptime": 2_500, "after_s": 10}, True),
    # a wall clock in epoch ms (over ten years as an uptime) stepped back by NTP is no reboot (review 44, F6)
    (pump(last_uptime_ms=1_796_589_159_846), {"timestamp": 1_796_589_156_846}, False),
    (pump(last_uptime_ms=900_000), {"timestamp": 1_796_589_156_846}, False),
    (pump(last_uptime_ms=UPTIME_BELIEVED_MAX_MS), {"timestamp": UPTIME_BELIEVED_MAX_MS - 5_000}, True),  # at the edge
    (pump(boot_id="b1", last_uptime_ms=UPTIME_BELIEVED_MAX_MS), {"boot_id": "b1", "uptime": UPTIME_BELIEVED_MAX_MS + 1},
     False),
])  # fmt: skip
def test_restart_detection(device, report, restarted):
    why = pump_restart_detect(device=device, boot_id=report.get("boot_id"), timestamp=report.get("timestamp"),
                              kind=report.get("kind", "status"), retained=report.get("retained", False),
                              received_at=HEARD_AT + timedelta(seconds=report.get("after_s", 1)),
                              uptime=report.get("uptime"))  # fmt: skip
    assert bool(why) == restarted, why


def test_a_wall_clock_timestamp_leaves_the_uptime_mark_where_it_was():
    """A number over ten years is no uptime: not kept as the mark a later uptime is compared with (a real `millis()`
    after it would otherwise read as gone back: a reboot that was not)."""
    device = pump(last_uptime_ms=900_000)
    pump_restart_detect(device=device, boot_id=None, timestamp=1_796_589_159_846, kind="progress", retained=False,
                        received_at=HEARD_AT + timedelta(seconds=1))  # fmt: skip
    assert device.last_uptime_ms == 900_000
    why = pump_restart_detect(device=device, boot_id=None, timestamp=901_000, kind="progress", retained=False,
                              received_at=HEARD_AT + timedelta(seconds=2))  # fmt: skip
    assert not why, why


@pytest.mark.parametrize(("progress", "finished"), [
    ({"status": "completed"}, True), ({"volumeRemainingMl": 0.03}, True), ({"progressPercent": 100}, True),
    ({"progressPercent": {"time": 90, "volume": 100}}, True),
    ({"volumeRemainingMl": 4.0, "progressPercent": 87}, False), (None, False),
])  # fmt: skip
def test_progress_says_finished(progress, finished):
    assert progress_says_finished(progress) is finished


@pytest.mark.parametrize(("session", "report", "evidence"), [
    ({"infusion_id": "inf_a"}, {"infusion_id": "inf_a", "status": "running", "kind": "progress"}, True),
    ({"infusion_id": "inf_a"}, {"infusion_id": "inf_b", "status": "running", "kind": "progress"}, False),
    ({"infusion_id": "inf_a"}, {"infusion_id": "inf_a", "status": "paused", "kind": "progress"}, False),
    ({"infusion_id": "inf_a"}, {"infusion_id": None, "status": "running", "kind": "progress"}, False),
    ({"infusion_id": "inf_a", "delivered": True}, {"infusion_id": None, "status": None, "kind": "progress"}, True),
    ({"infusion_id": "inf_a", "delivered": True}, {"infusion_id": None, "status": "started", "kind": "status"}, True),
    ({"infusion_id": "inf_a"}, {"infusion_id": "inf_a", "status": None, "kind": "bolus"}, True),
    ({"infusion_id": "inf_a", "delivered": True}, {"infusion_id": None, "status": None, "kind": "bolus"}, False),
])  # fmt: skip
def test_evidence_that_a_pump_infuses_a_pending_order(session, report, evidence):
    pending = SimpleNamespace(infusion_id=session["infusion_id"], status=SessionStatus.PENDING,
                              delivered_at=timezone.now() if session.get("delivered") else None)  # fmt: skip
    assert is_evidence_for(pending, infusion_id=report["infusion_id"], status=report["status"],
                           kind=report["kind"]) is evidence  # fmt: skip


def running(device_id: str = "PUMP_0001") -> InfusionSession:
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    with transaction.atomic():
        locked = device_lock(device_id=device_id)
        session_transition(device=locked, session=session, to=SessionStatus.RUNNING)
    return session


@pytest.mark.django_db
@pytest.mark.parametrize(("progress", "ends"), [
    ({"volumeRemainingMl": 0.0}, SessionStatus.COMPLETED), ({"volumeRemainingMl": 9.0}, SessionStatus.INTERRUPTED),
])  # fmt: skip
def test_idle_ends_a_running_session_by_its_last_progress(progress, ends):
    session = running()
    Device.objects.filter(pk=session.device_id).update(
        latest_progress={**progress, "deliveredVolumeMl": 21.0}, latest_progress_at=timezone.now()
    )
    with transaction.atomic():
        session_end_on_idle(device=device_lock(device_id="PUMP_0001"), reported="idle", now=timezone.now())
    assert InfusionSession.objects.get(pk=session.pk).status == ends
    interrupted = Alarm.objects.filter(type="infusion_interrupted", state=AlarmState.ACTIVE).first()
    assert (interrupted is not None) == (ends == SessionStatus.INTERRUPTED)
    if interrupted:
        assert "21 mL" in interrupted.message


@pytest.mark.django_db
def test_repeated_requests_answer_the_command_under_way():
    shown = running().infusion_id
    first = infusion_request(device_id="PUMP_0001", kind=PAUSE, infusion_id=shown, idempotency_key="k1")
    assert infusion_request(device_id="PUMP_0001", kind=PAUSE, infusion_id=shown, idempotency_key="k1") == first
    assert infusion_request(device_id="PUMP_0001", kind=PAUSE, infusion_id=shown) == first
    assert Command.objects.filter(kind=CommandKind.PAUSE_INFUSION).count() == 1
    stop = infusion_request(device_id="PUMP_0001", kind=CommandKind.STOP_INFUSION, infusion_id=shown)
    assert stop != first and stop.payload["infusionId"] == first.payload["infusionId"]


@pytest.mark.django_db
def test_a_key_once_used_for_another_command_is_refused_not_answered_with_that_command():
    """A reviewer's finding: a STOP sent with a PAUSE's key was answered "accepted" with the PAUSE, and no STOP
    was ever queued (a client keeping its Idempotency-Key header)."""
    shown = running().infusion_id
    infusion_request(device_id="PUMP_0001", kind=PAUSE, infusion_id=shown, idempotency_key="integration-key")
    with pytest.raises(PumpStreamError) as refused:
        infusion_request(device_id="PUMP_0001", kind=CommandKind.STOP_INFUSION, infusion_id=shown,
                         idempotency_key="integration-key")  # fmt: skip
    assert refused.value.code == "idempotency_conflict" and "PAUSE_INFUSION" in refused.value.message
    stop = infusion_request(device_id="PUMP_0001", kind=CommandKind.STOP_INFUSION, infusion_id=shown,
                            idempotency_key="a-new-key")  # fmt: skip
    assert stop.kind == CommandKind.STOP_INFUSION


@pytest.mark.django_db
def test_stop_without_a_session_only_for_a_pump_infusing_without_an_order():
    device = make_device()
    with pytest.raises(PumpStreamError):
        infusion_request(device_id=device.device_id, kind=CommandKind.STOP_INFUSION, infusion_id=None)
    device.pump_state = "running"
    device.save()
    stop = infusion_request(device_id=device.device_id, kind=CommandKind.STOP_INFUSION, infusion_id=None)
    assert stop.session is None and stop.payload["infusionId"] is None
    with pytest.raises(PumpStreamError):
        infusion_request(device_id=device.device_id, kind=PAUSE, infusion_id=None)


@pytest.mark.django_db
def test_every_command_ends_by_its_deadline_and_a_lost_pause_raises_command_not_carried_out(settings):
    session = running()
    pause = infusion_request(device_id="PUMP_0001", kind=PAUSE, infusion_id=session.infusion_id)
    Command.objects.filter(pk=pause.pk).update(state=CommandState.SENT)
    later = timezone.now() + timedelta(seconds=settings.PUMPSTREAM["COMMAND_EXPIRY_S"] + 1)
    assert commands_end_overdue(now=later) == 1, "only the PAUSE is past its deadline"
    assert Command.objects.get(pk=pause.pk).state == CommandState.FAILED
    alarm = Alarm.objects.get(type="command_not_carried_out")
    assert alarm.priority == "high" and "act at the pump" in alarm.message
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    assert start.state == CommandState.QUEUED and start.expires_at > later, "START has the longer deadline"


@pytest.mark.django_db
def test_a_timed_out_session_supersedes_its_start_and_withholds_stop_from_an_infusing_pump():
    device = make_device()
    session = infusion_start(device_id=device.device_id, order=make_order())
    device.pump_state = "running"
    device.save(update_fields=["pump_state"])  # not the stale `event_seq`: the start took seqs 1 and 2
    infusion_time_out(infusion_id=session.infusion_id)
    assert Command.objects.get(kind=CommandKind.START_INFUSION).state == CommandState.SUPERSEDED
    assert not Command.objects.filter(kind=CommandKind.STOP_INFUSION).exists(), "STOP sent to a pump reporting infusing"


@pytest.mark.django_db
def test_ending_a_record_needs_a_reason_and_is_audited():
    session = running()
    nurse = make_user("nurse")
    for blank in (" ", "\u200b", "\u2060 \ufeff"):  # zero-width characters alone pass strip(): audited as no reason
        with pytest.raises(PumpStreamError):
            infusion_record_end(infusion_id=session.infusion_id, user=nurse, reason=blank)
    infusion_record_end(infusion_id=session.infusion_id, user=nurse, reason="pump swapped")
    ended = InfusionSession.objects.get(pk=session.pk)
    assert ended.status == SessionStatus.INTERRUPTED and ended.status_reason == "record ended by nurse: pump swapped"
    assert ended.device.events.filter(kind="user.infusion_record_end", user=nurse).exists()
    assert not Command.objects.filter(kind=CommandKind.STOP_INFUSION).exists(), "nothing is sent to the pump"
