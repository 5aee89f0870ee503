"""Every legal and illegal transition of every state machine."""

import itertools

import pytest

from devices.exceptions import PumpStreamError
from devices.models import InfusionSession
from devices.services.changes import device_lock
from devices.services.commands import command_transition
from devices.services.sessions import infusion_start, session_transition
from devices.states import (
    ALARM_TRANSITIONS,
    COMMAND_TRANSITIONS,
    SESSION_TRANSITIONS,
    AlarmState,
    CommandState,
    SessionStatus,
    is_legal,
)
from tests.factories import make_device, make_order

SESSION_PAIRS = list(itertools.product(SessionStatus.values, SessionStatus.values))
COMMAND_PAIRS = list(itertools.product(CommandState.values, CommandState.values))

EXPECTED_SESSION_LEGAL = {
    ("pending", "running"), ("pending", "rejected"), ("pending", "timed_out"), ("pending", "cancelled"),
    ("running", "paused"), ("paused", "running"), ("running", "completed"), ("running", "stopped"),
    ("paused", "completed"), ("paused", "stopped"), ("timed_out", "running"), ("cancelled", "running"),
    # v1.1: restarts, the idle rule and a person ending a ghost record end a session `interrupted`; evidence
    # that the pump still runs it brings it back.
    ("pending", "interrupted"), ("running", "interrupted"), ("paused", "interrupted"), ("interrupted", "running"),
    # ... or holding it paused (review 22, finding 5: a pump rebooted while its order was paused)
    ("timed_out", "paused"), ("cancelled", "paused"), ("interrupted", "paused"),
}  # fmt: skip
EXPECTED_COMMAND_ENDS = {"done", "failed", "expired", "superseded"}


def test_session_table_is_the_issue_table():
    legal = {(a, b) for a, b in SESSION_PAIRS if is_legal(SESSION_TRANSITIONS, a, b)}
    assert legal == EXPECTED_SESSION_LEGAL


# The one move out of an end: a command failed though handed to the broker that the pump carries out in time (review 22)
EXPECTED_AFTER_AN_END = {CommandState.FAILED: {CommandState.DONE}}


def test_every_command_state_leads_to_an_end_and_ends_are_final():
    for state in CommandState.values:
        if state in EXPECTED_COMMAND_ENDS:
            assert COMMAND_TRANSITIONS[state] == EXPECTED_AFTER_AN_END.get(state, set()), (
                f"{state} is an end: nothing follows it but {EXPECTED_AFTER_AN_END.get(state, set())}"
            )
        else:
            assert EXPECTED_COMMAND_ENDS <= COMMAND_TRANSITIONS[state] | {"done"} and {
                "failed", "superseded"} <= COMMAND_TRANSITIONS[state], f"{state} must be able to end"  # fmt: skip


def test_alarm_table_only_clears():
    assert is_legal(ALARM_TRANSITIONS, AlarmState.ACTIVE, AlarmState.CLEARED)
    assert not is_legal(ALARM_TRANSITIONS, AlarmState.CLEARED, AlarmState.ACTIVE)


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), SESSION_PAIRS)
def test_session_transition_service_obeys_table(current, target):
    device = make_device()
    session = infusion_start(device_id=device.device_id, order=make_order())
    InfusionSession.objects.filter(pk=session.pk).update(status=current)
    session.refresh_from_db()
    from django.db import transaction

    with transaction.atomic():
        locked = device_lock(device_id=device.device_id)
        if (current, target) in EXPECTED_SESSION_LEGAL:
            session_transition(device=locked, session=session, to=target)
            assert InfusionSession.objects.get(pk=session.pk).status == target
        else:
            with pytest.raises(PumpStreamError) as raised:
                session_transition(device=locked, session=session, to=target)
            assert raised.value.code == "illegal_transition"
            assert current in raised.value.message and target in raised.value.message


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), COMMAND_PAIRS)
def test_command_transition_service_obeys_table(current, target):
    from django.db import transaction

    device = make_device()
    session = infusion_start(device_id=device.device_id, order=make_order())
    command = session.commands.get()
    command.state = current
    command.save()
    with transaction.atomic():
        locked = device_lock(device_id=device.device_id)
        if current == target:
            assert command_transition(device=locked, command=command, to=target) is False
        elif is_legal(COMMAND_TRANSITIONS, current, target):
            assert command_transition(device=locked, command=command, to=target) is True
            command.refresh_from_db()
            assert command.state == target
        else:
            with pytest.raises(PumpStreamError):
                command_transition(device=locked, command=command, to=target)


def test_the_session_groupings_split_every_status_once() -> None:
    from devices.states import ACTIVE_SESSION_STATUSES, SESSION_ENDED_STATUSES, SESSION_ON_PUMP_STATUSES

    active, ended = set(ACTIVE_SESSION_STATUSES), set(SESSION_ENDED_STATUSES)
    assert not active & ended, f"a status is both active and ended: {active & ended}"
    assert active | ended == set(SessionStatus), (
        f"statuses neither active nor ended: {set(SessionStatus) - active - ended}"
    )
    assert set(SESSION_ON_PUMP_STATUSES) <= active, "a status under way at the pump must be active"


@pytest.mark.django_db
def test_an_alarm_moves_only_by_its_transition_table() -> None:
    from devices.services.alarms import alarm_transition
    from devices.states import AlarmState

    alarm = make_device("TRN_ALARM").alarms.create(type="occlusion", priority="high")
    alarm_transition(alarm=alarm, to=AlarmState.CLEARED, now=alarm.raised_at)
    assert alarm.state == AlarmState.CLEARED and alarm.cleared_at == alarm.raised_at
    with pytest.raises(PumpStreamError) as refused:
        alarm_transition(alarm=alarm, to=AlarmState.ACTIVE, now=alarm.raised_at)
    assert refused.value.code == "alarm_not_active", "a cleared alarm must not become active again"
