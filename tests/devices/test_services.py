"""The services that every edge calls: starting, confirming, alarms, seq and emit after commit."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.models import Alarm, Command, DeviceEvent, InfusionSession
from devices.selectors import bridge_status
from devices.services.alarm_keys import priority_from_severity, types_cleared_by
from devices.services.alarms import alarm_acknowledge, alarm_clear, alarm_raise
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm, parameters_match
from devices.services.records import bridge_heartbeat, bridge_started
from devices.services.requests import infusion_cancel
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource, AlarmState, CommandKind, PumpState, SessionStatus
from protocol import events
from tests.factories import make_device, make_order, make_user

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit must really fire

ORDER_PARAMETERS = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15,
                    "bolusEnabled": True, "bolusVolumeMl": 5}  # fmt: skip


def confirm(device, session, parameters=ORDER_PARAMETERS, confirmed=True):
    with transaction.atomic():
        locked = device_lock(device_id=device.device_id)
        return infusion_confirm(device=locked, infusion_id=session.infusion_id, confirmed=confirmed,
                                parameters=parameters, confirmation={"confirmed": confirmed})  # fmt: skip


def test_start_creates_pending_session_and_queued_start_command(emitted):
    device = make_device()
    user = make_user(ward=device.ward)
    session = infusion_start(device_id="PUMP_0001", order=make_order(), user=user)
    assert session.status == SessionStatus.PENDING and session.started_by == user
    command = Command.objects.get(session=session)
    assert command.kind == CommandKind.START_INFUSION and command.state == "queued"
    assert command.payload == {"infusionId": session.infusion_id, "flowRateMlMin": 2.0, "plannedVolumeMl": 30.0,
                               "plannedTimeMin": 15.0, "bolus": {"enabled": True, "volumeMl": 5.0}}  # fmt: skip
    assert [c.event for c in emitted] == [events.DEVICE_SESSION, events.DEVICE_COMMAND]
    assert [c.seq for c in emitted] == [1, 2], "each recorded change takes the pump's next seq"
    assert DeviceEvent.objects.filter(kind="user.infusion_start", user=user).exists()


def test_emits_nothing_when_the_transaction_rolls_back(emitted):
    device = make_device()
    with pytest.raises(RuntimeError), transaction.atomic():
        infusion_start(device_id=device.device_id, order=make_order())
        raise RuntimeError("rolled back")
    assert emitted == [], "a browser must never see a state the database does not hold"


def test_second_start_on_same_pump_is_refused():
    make_device()
    infusion_start(device_id="PUMP_0001", order=make_order())
    with pytest.raises(PumpStreamError) as raised:
        infusion_start(device_id="PUMP_0001", order=make_order())
    assert raised.value.code == "session_active"


def test_database_guards_one_active_session_per_pump():
    device = make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    with pytest.raises(IntegrityError), transaction.atomic():
        InfusionSession.objects.create(device=device, flow_rate_ml_min=1, planned_volume_ml=1, planned_time_min=1)
    assert session.status == SessionStatus.PENDING


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"flow_rate_ml_min": 0}, "flow_rate_ml_min"),
        ({"planned_volume_ml": -1}, "planned_volume_ml"),
        ({"planned_time_min": float("nan")}, "planned_time_min"),
        ({"flow_rate_ml_min": 50.0, "planned_time_min": 0.6}, "flow_rate_ml_min"),
        ({"planned_volume_ml": 2000.0, "planned_time_min": 1000.0}, "planned_volume_ml"),
        ({"planned_time_min": 20.0}, "planned_time_min"),
        ({"bolus_volume_ml": 31.0}, "bolus_volume_ml"),
    ],
)
def test_invalid_orders_name_the_wrong_field(overrides, field):
    make_device()
    with pytest.raises(PumpStreamError) as raised:
        infusion_start(device_id="PUMP_0001", order=make_order(**overrides))
    assert raised.value.field == field
    assert not InfusionSession.objects.exists()


def test_confirmation_runs_session_and_pump(emitted):
    device = make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    confirm(device, session)
    session.refresh_from_db()
    device.refresh_from_db()
    assert session.status == SessionStatus.RUNNING and session.confirmed_at is not None
    assert device.pump_state == PumpState.RUNNING
    assert events.DEVICE_INFUSION_CONFIRMED in [c.event for c in emitted]
    assert not Alarm.objects.filter(type="parameter_mismatch").exists()


def test_replayed_confirmation_changes_nothing(emitted):
    device = make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    confirm(device, session)
    count = len(emitted)
    confirm(device, session)
    assert len(emitted) == count, "a replayed confirmation must not be applied twice"


def test_mismatched_readback_raises_parameter_mismatch_high():
    device = make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    confirm(device, session, parameters={**ORDER_PARAMETERS, "flowRateMlMin": 2.2})
    alarm = Alarm.objects.get(type="parameter_mismatch")
    assert alarm.priority == AlarmPriority.HIGH and alarm.source == AlarmSource.SERVER
    session.refresh_from_db()
    assert session.status == SessionStatus.RUNNING and session.reported_parameters["flowRateMlMin"] == 2.2


@pytest.mark.parametrize(
    ("change", "matches"),
    [({"flowRateMlMin": 2.009}, True), ({"flowRateMlMin": 2.02}, False), ({"plannedVolumeMl": 30.04}, True),
     ({"plannedVolumeMl": 30.1}, False), ({"plannedTimeMin": 15.09}, True), ({"plannedTimeMin": 15.2}, False),
     ({"bolusVolumeMl": 5.2}, False)],
)  # fmt: skip
def test_readback_tolerances(change, matches):
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    assert parameters_match(session, {**ORDER_PARAMETERS, **change}) is matches


def test_disabled_bolus_equals_bolus_of_zero():
    make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order(bolus_enabled=False))
    assert parameters_match(session, {**ORDER_PARAMETERS, "bolusEnabled": True, "bolusVolumeMl": 0})


def test_rejection_at_the_pump():
    device = make_device()
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    confirm(device, session, confirmed=False)
    session.refresh_from_db()
    assert session.status == SessionStatus.REJECTED


def test_confirmation_for_another_pumps_session_is_refused():
    make_device()
    other = make_device("PUMP_0002")
    session = infusion_start(device_id="PUMP_0001", order=make_order())
    with pytest.raises(PumpStreamError) as raised:
        confirm(other, session)
    assert raised.value.code == "unknown_session"


def test_cancel_queues_stop_and_late_confirmation_revives_and_cancels_newer_pending():
    device = make_device()
    old = infusion_start(device_id="PUMP_0001", order=make_order())
    infusion_cancel(infusion_id=old.infusion_id)
    assert Command.objects.filter(session=old, kind=CommandKind.STOP_INFUSION).exists()
    newer = infusion_start(device_id="PUMP_0001", order=make_order())
    confirm(device, old)
    old.refresh_from_db()
    newer.refresh_from_db()
    assert old.status == SessionStatus.RUNNING
    assert newer.status == SessionStatus.CANCELLED
    assert Alarm.objects.filter(type="confirmed_late", state=AlarmState.ACTIVE).exists()


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("HIGH", "high"), ("critical", "high"), ("Medium", "medium"), ("warning", "medium"), ("low", "low"),
     ("INFO", "low"), (None, "high"), ("bogus", "high"), (3, "high")],
)  # fmt: skip
def test_priority_mapping(severity, priority):
    assert priority_from_severity(severity) == priority


def test_alarm_repeat_counts_and_clear_suffix(emitted):
    device = make_device()
    with transaction.atomic():
        locked = device_lock(device_id=device.device_id)
        for _ in range(3):
            alarm_raise(device=locked, type="bubble_detected", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)
    alarm = Alarm.objects.get(type="bubble_detected")
    assert alarm.count == 3
    assert [c.event for c in emitted].count(events.DEVICE_NOTIFICATION) == 1
    assert types_cleared_by("bubble_cleared") == ["bubble", "bubble_detected"]
    with transaction.atomic():
        alarm_clear(device=device_lock(device_id="PUMP_0001"), types=types_cleared_by("bubble_cleared"))
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.CLEARED and alarm.cleared_at is not None


def test_acknowledge_records_who_and_when(emitted):
    device = make_device()
    user = make_user(ward=device.ward)
    with transaction.atomic():
        alarm = alarm_raise(device=device_lock(device_id=device.device_id), type="occlusion",
                            priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)  # fmt: skip
    alarm_acknowledge(alarm_id=alarm.pk, user=user)
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == user
    assert emitted[-1].body["alarm"]["acknowledged"]["by"] == "nurse"


def test_connectivity_is_derived_from_presence_and_last_seen():
    device = make_device(has_presence=False)
    now = timezone.now()
    assert device.connectivity(now=now) == "unknown"
    device.last_seen_at = now - timedelta(seconds=2)
    assert device.connectivity(now=now, heartbeat_timeout_s=10) == "online"
    device.last_seen_at = now - timedelta(seconds=11)
    assert device.connectivity(now=now, heartbeat_timeout_s=10) == "stale"
    device.has_presence, device.presence = True, "online"
    assert device.connectivity(now=now, heartbeat_timeout_s=10) == "online", "presence pumps may be quiet"
    device.presence = "offline"
    assert device.connectivity(now=now, heartbeat_timeout_s=10) == "offline"


def test_status_event_shows_degraded_when_stale():
    device = make_device(reported_status="running", last_seen_at=timezone.now() - timedelta(hours=1))
    body = payloads.status_body(device).status
    assert body.status == "degraded" and body.connectivity == "stale"


def test_bridge_heartbeat_records_a_reconnection_that_fell_between_two_heartbeats():
    from devices.services.records import bridge_heartbeat

    first = timezone.now() - timedelta(minutes=5)
    bridge_heartbeat(broker_connected=True, connected_since=first, name="b1")
    reconnected = timezone.now() - timedelta(seconds=1)
    # still connected at both samples, but the link dropped and came back in between
    status = bridge_heartbeat(broker_connected=True, connected_since=reconnected, name="b1")
    assert status.broker_connected_since == reconnected
    assert status.broker_lost_since is None
    lost = bridge_heartbeat(broker_connected=False, name="b1")
    assert lost.broker_lost_since is not None and lost.broker_connected_since == reconnected


def test_a_bridge_stopped_on_purpose_does_not_degrade_monitoring_the_other_bridge_holds():
    now = timezone.now()
    bridge_heartbeat(broker_connected=True, name="bridge-a", now=now - timedelta(seconds=2), connected_since=now)
    bridge_heartbeat(broker_connected=True, name="bridge-b", now=now - timedelta(seconds=2), connected_since=now)
    bridge_heartbeat(broker_connected=False, name="bridge-b", now=now - timedelta(seconds=1),
                     stats={"stopped": True})  # b's _say_stopped  # fmt: skip
    bridge_heartbeat(broker_connected=True, name="bridge-a", now=now, connected_since=now)  # a took b's slots over
    status = bridge_status()
    assert status["alive"] and status["brokerConnected"], (
        f"bridge-a holds the broker, yet the stopped bridge-b's farewell says degraded: {status}"
    )
    bridge_heartbeat(broker_connected=True, name="bridge-a", now=now - timedelta(seconds=3), connected_since=now)
    assert bridge_status()["brokerConnected"], "before bridge-a's next heartbeat too (b's farewell is the newest)"
    bridge_heartbeat(broker_connected=False, name="bridge-a", now=now)  # a live bridge that lost the broker
    assert not bridge_status()["brokerConnected"], "a lost broker is never hidden"


def test_a_bridge_stopped_on_purpose_alone_degrades_monitoring():
    bridge_heartbeat(broker_connected=True, name="only", now=timezone.now(), connected_since=timezone.now())
    bridge_heartbeat(broker_connected=False, name="only", stats={"stopped": True})
    assert not bridge_status()["brokerConnected"]


def test_a_bridge_restarted_beside_one_holding_every_slot_does_not_degrade_monitoring():
    now = timezone.now()
    bridge_heartbeat(broker_connected=True, name="bridge-a", now=now - timedelta(seconds=3), connected_since=now)
    bridge_heartbeat(broker_connected=True, name="bridge-b", now=now - timedelta(seconds=3), connected_since=now)
    bridge_heartbeat(broker_connected=False, name="bridge-b", now=now - timedelta(seconds=2), stats={"stopped": True})
    bridge_heartbeat(broker_connected=True, name="bridge-a", now=now - timedelta(seconds=1), connected_since=now)
    assert bridge_status()["brokerConnected"], "precondition (b217d8c): the farewell degrades nothing"
    bridge_started(name="bridge-b")  # the deploy starts b again; a still holds every slot, b's home slots included
    status = bridge_status()
    assert status["brokerConnected"], f"bridge-a holds every slot, yet b's start says degraded: {status}"
    bridge_heartbeat(broker_connected=False, name="bridge-b", stats={"standby": True})  # no slot handed back yet
    assert bridge_status()["brokerConnected"], "a bridge holding no slot beside the holder degrades nothing"
    bridge_heartbeat(broker_connected=False, name="bridge-b", stats={})  # b holds slots and lost the broker
    assert not bridge_status()["brokerConnected"], "a lost broker is never hidden"
