"""A pump's report that its infusion ended, paused or was rejected must not be lost to one odd field (review 19, 1).

A `completion`, an `actions` report (MANUAL_STOP / MANUAL_PAUSE) or a rejection (`confirmed: false`) refused by the
schema for one odd field was only dead-lettered: the ended (or paused) infusion stayed shown as running (the monitor's
live rate and time left, the overview's "infusing"), with no alarm, until the silence check's `communication_lost`
sent the nurse looking for a network fault at a pump that had finished or been stopped. Review 15 made a refused
`degraded` status still raise its alarm, and a refused `error` raises `unreadable_alarm`; a refused report of what the
pump does with the infusion is the same kind of news, and the one the screen then contradicts. Progress saying
`completed` (the pump's final report, accepted) moved nothing either.
"""

import pytest

from devices.models import Alarm, DeadLetter, Device, InfusionSession
from devices.states import PumpState, SessionStatus
from tests.factories import make_device
from tests.support.ingest import confirmed_order, send, start_sent

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip
FINAL = {"status": "completed", "flowRate": 2.0, "deliveredVolumeMl": 30.0, "volumeRemainingMl": 0.0,
         "timeRemainingMin": 0.0, "progressPercent": 100}  # fmt: skip


def running_infusion(capture, device_id: str, **device) -> InfusionSession:
    make_device(device_id, has_presence=True, **device)
    session = confirmed_order(device_id, parameters=READ_BACK)
    send(capture, device_id, "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 28.0,
                                           "volumeRemainingMl": 2.0, "timeRemainingMin": 1.0,
                                           "infusionId": session.infusion_id})  # fmt: skip
    return session


def shown(session: InfusionSession) -> tuple[str, str, list]:
    session.refresh_from_db()
    device = Device.objects.get(pk=session.device_id)
    alarms = sorted(Alarm.objects.filter(device=device, state="active").values_list("type", flat=True))
    return session.status, device.pump_state, alarms


# ---- progress saying `completed` ---------------------------------------------------------------------------------


def test_the_final_progress_saying_completed_does_not_leave_the_infusion_running_when_the_completion_is_refused(
    django_capture_on_commit_callbacks,
):
    """The pump's final progress said `completed` (accepted) and its completion was refused: the server heard the end
    and still showed the infusion running (`progress` with status `paused` paused the session; `completed` moved
    nothing, neither the session nor the pump's state)."""
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_FINAL")
    send(capture, "END_FINAL", "progress", {**FINAL, "infusionId": session.infusion_id}, 1)
    send(capture, "END_FINAL", "completion", {"completed": True, "infusionId": session.infusion_id,
                                              "timestamp": {"ms": 973010}}, 1.1)  # fmt: skip
    status, pump_state, alarms = shown(session)
    assert status != SessionStatus.RUNNING or alarms, (
        f"the pump's last progress said completed, 100 %, 0 mL left, and its completion was refused: the screen shows "
        f"the infusion {status} and the pump {pump_state} (expected {PumpState.IDLE}), with alarms {alarms}"
    )


@pytest.mark.parametrize("named", [True, False], ids=["naming-it", "naming-none"])
@pytest.mark.parametrize("paused_first", [False, True], ids=["running", "paused"])
def test_progress_saying_completed_completes_the_infusion_on_the_pump_with_it_as_the_final_progress(
    django_capture_on_commit_callbacks, named, paused_first
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_PROG")
    if paused_first:
        send(capture, "END_PROG", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    final = {**FINAL, "infusionId": session.infusion_id} if named else FINAL
    send(capture, "END_PROG", "progress", final, 1)
    status, pump_state, alarms = shown(session)
    assert (status, pump_state, alarms) == (SessionStatus.COMPLETED, PumpState.IDLE, []), (
        f"the pump's progress said completed, 100 %, 0 mL left: the infusion is shown {status}, the pump {pump_state}, "
        f"alarms {alarms}"
    )
    assert session.status_reason == "completed at the pump"
    device = Device.objects.get(pk=session.device_id)
    assert (session.progress_on(device) or {}).get("progressPercent") == 100, (
        "the completed progress is not the ended infusion's final progress: the monitor loses its last figures"
    )


def test_progress_saying_completed_about_another_infusion_moves_nothing(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_OTHER")
    send(capture, "END_OTHER", "progress", {**FINAL, "infusionId": "inf_older"}, 1)
    status, pump_state, alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"progress naming another infusion moved the one on the pump: {status}, the pump {pump_state}"
    )


def test_progress_saying_completed_naming_the_pending_order_runs_it_first_then_completes_it(
    django_capture_on_commit_callbacks,
):
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_PENDING", has_presence=True)
    session = infusion_start(device_id="END_PENDING", order=make_order())
    send(capture, "END_PENDING", "progress", {**FINAL, "infusionId": session.infusion_id}, 1)
    status, pump_state, _alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.COMPLETED, PumpState.IDLE), (
        f"the pump's final progress named the waiting order: it ran and completed, shown {status}, pump {pump_state}"
    )
    assert session.running_evidence, "the order ran on the pump's evidence, not recorded as such"


# ---- a refused completion, action at the pump or answer to a start ------------------------------------------------
# One odd field each, as review 15's for statuses: a firmware broken in one field. These leave the contract's fields
# readable: the report is applied without the odd one (dead-lettered all the same).
ODD_FIELDS = [{"timestamp": {"ms": 973010}}, {"seq": -1, "bootId": "b"}, {"completedAt": {"uptimeMs": 973010}}]
ODD_IDS = ["ts-object", "seq-negative", "completedAt-object"]


def active_alarms(device_id: str) -> list[Alarm]:
    return list(Alarm.objects.filter(device__device_id=device_id, state="active").select_related("session"))


def unreadable(device_id: str) -> Alarm:
    alarms = [alarm for alarm in active_alarms(device_id) if alarm.type == "unreadable_report"]
    assert len(alarms) == 1, f"expected one active unreadable_report, got {[a.type for a in active_alarms(device_id)]}"
    return alarms[0]


def test_a_completion_refused_for_an_infusion_id_that_is_a_number_raises_an_alarm_and_moves_nothing(
    django_capture_on_commit_callbacks,
):
    """The infusion it names cannot be read: it may be another one than the infusion on the pump, so it moves none;
    the nurse is told the screen may be wrong."""
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_DONE")
    send(capture, "END_DONE", "completion", {"completed": True, "infusionId": 17, "summary": {}}, 1)
    assert DeadLetter.objects.filter(reason="schema").count() == 1
    status, pump_state, _alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), "it named no readable one"
    alarm = unreadable("END_DONE")
    assert (alarm.priority, alarm.source, alarm.session_id) == ("high", "server", session.pk), (
        f"the alarm is {alarm.priority} {alarm.source}, tied to session {alarm.session_id} (expected high, server, "
        f"the infusion on the pump {session.pk})"
    )
    assert "the end of an infusion" in alarm.message and "check the pump" in alarm.message, alarm.message


@pytest.mark.parametrize("odd_field", ODD_FIELDS, ids=ODD_IDS)
def test_a_completion_refused_for_an_odd_field_completes_the_infusion_and_keeps_the_dead_letter(
    django_capture_on_commit_callbacks, odd_field
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_DONE")
    body = {"completed": True, "infusionId": session.infusion_id, "summary": {"totalVolumeMl": 30.0}, **odd_field}
    outcomes = send(capture, "END_DONE", "completion", body, 1)
    assert DeadLetter.objects.filter(reason="schema").count() == 1, f"the refusal is not kept ({dict(outcomes)})"
    status, pump_state, alarms = shown(session)
    assert (status, pump_state, alarms) == (SessionStatus.COMPLETED, PumpState.IDLE, []), (
        f"the pump reported the infusion completed ({sorted(odd_field)} refused): the screen shows it {status}, the "
        f"pump {pump_state}, alarms {alarms}"
    )
    assert session.completion["summary"] == {"totalVolumeMl": 30.0}, "what could be read of the completion was lost"
    refused = [name for name in odd_field if name != "bootId"]
    assert session.completion["refusedFields"] == refused, f"the stored completion does not name {refused} as refused"
    letter = DeadLetter.objects.get()
    assert letter.detail.startswith(f"applied without {refused[0]}"), f"the letter does not say so: {letter.detail}"
    assert '"completed": true' in letter.payload_excerpt, "the dead letter does not keep the message"


@pytest.mark.parametrize("action", ["MANUAL_STOP", "MANUAL_PAUSE"])
@pytest.mark.parametrize("odd_field", [{"timestamp": {"ms": 97200}}, {"reason": "x" * 501}, {"source": {"btn": 2}}],
                         ids=["ts-object", "reason-long", "source-object"])  # fmt: skip
def test_a_refused_action_at_the_pump_moves_the_infusion_as_the_pump_said(
    django_capture_on_commit_callbacks, odd_field, action
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_ACTION")
    body = {"action": action, "source": "device_screen", "infusionId": session.infusion_id, **odd_field}
    send(capture, "END_ACTION", "actions", body, 1)
    assert DeadLetter.objects.filter(reason="schema").count() == 1
    expected = {"MANUAL_STOP": (SessionStatus.STOPPED, PumpState.IDLE),
                "MANUAL_PAUSE": (SessionStatus.PAUSED, PumpState.PAUSED)}[action]  # fmt: skip
    status, pump_state, alarms = shown(session)
    assert (status, pump_state, alarms) == (*expected, []), (
        f"a person pressed {action} at the pump ({sorted(odd_field)} refused the report): the screen shows the "
        f"infusion {status}, the pump {pump_state}, with alarms {alarms}"
    )
    assert session.status_reason == f"{action.lower()} at the pump"


@pytest.mark.parametrize("odd_field", [{"timestamp": {"ms": 1209000}}, {"parameters": {"flowRateMlMin": "1.0"}}],
                         ids=["ts-object", "rate-text"])  # fmt: skip
def test_a_refused_rejection_ends_the_waiting_order_as_rejected(django_capture_on_commit_callbacks, odd_field):
    """Today's firmware rejects with `confirmed: false` (its read-back in `parameters`) and then reports `idle`, which
    a pump waiting on its confirm screen reports too: refused, the rejection was lost, and the waiting window counted
    down "waiting for someone at the pump to accept" until the time-out said "did not confirm in time"."""
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_REJECT", has_presence=True)
    session = infusion_start(device_id="END_REJECT", order=make_order())
    send(capture, "END_REJECT", "status", {"status": "received_start_command", "infusionId": session.infusion_id})
    body = {"infusionId": session.infusion_id, "confirmed": False, "reason": "rejected_at_pump",
            "parameters": READ_BACK, **odd_field}  # fmt: skip
    send(capture, "END_REJECT", "infusion", body, 1)
    send(capture, "END_REJECT", "status", {"status": "idle"}, 1.1)
    assert DeadLetter.objects.filter(reason="schema").count() == 1
    status, _pump_state, alarms = shown(session)
    assert (status, alarms) == (SessionStatus.REJECTED, []), (
        f"the pump rejected the order ({sorted(odd_field)} refused its answer): the order is {status}, alarms {alarms}"
    )


# ---- never forged: another pump's, or an infusion the report does not name ----------------------------------------


def test_a_refused_stop_naming_another_pumps_infusion_moves_neither_pump(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    mine, theirs = running_infusion(capture, "END_A"), running_infusion(capture, "END_B")
    body = {"action": "MANUAL_STOP", "infusionId": theirs.infusion_id, "timestamp": {"ms": 1}}
    send(capture, "END_A", "actions", body, 1)
    assert DeadLetter.objects.filter(reason="schema").count() == 1
    assert shown(mine)[:2] == (SessionStatus.RUNNING, PumpState.RUNNING), "a Stop naming another infusion moved mine"
    assert shown(theirs) == (SessionStatus.RUNNING, PumpState.RUNNING, []), "pump A's report moved pump B's infusion"


@pytest.mark.parametrize("device_field", ["END_B", "END B", 7], ids=["another-pump", "odd-id", "number"])
def test_a_refused_stop_claiming_another_device_id_moves_nothing_and_alarms_on_its_topics_pump(
    django_capture_on_commit_callbacks, device_field
):
    capture = django_capture_on_commit_callbacks
    mine, theirs = running_infusion(capture, "END_A"), running_infusion(capture, "END_B")
    body = {"action": "MANUAL_STOP", "deviceId": device_field, "timestamp": {"ms": 1}}
    send(capture, "END_A", "actions", body, 1)
    assert shown(mine)[:2] == (SessionStatus.RUNNING, PumpState.RUNNING), "a report claiming another pump was applied"
    assert shown(theirs) == (SessionStatus.RUNNING, PumpState.RUNNING, []), "pump A's report moved pump B"
    assert "a Stop at its own screen" in unreadable("END_A").message


def test_a_refused_stop_naming_an_unreadable_infusion_moves_nothing_and_alarms(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_ACTION")
    send(capture, "END_ACTION", "actions", {"action": "MANUAL_STOP", "infusionId": ["x"], "source": "screen"}, 1)
    status, pump_state, _alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING)
    alarm = unreadable("END_ACTION")
    assert alarm.session_id == session.pk and "a Stop at its own screen" in alarm.message, alarm.message


def test_a_refused_rejection_naming_another_pumps_order_moves_neither(django_capture_on_commit_callbacks):
    """Read without its odd field it names an order that is not on this pump: refused as a readable one would be
    (`unknown_session`), no alarm for its form, and the other pump's order keeps waiting."""
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    mine, theirs = running_infusion(capture, "END_A"), None
    make_device("END_B", has_presence=True)
    theirs = infusion_start(device_id="END_B", order=make_order())
    body = {"infusionId": theirs.infusion_id, "confirmed": False, "timestamp": {"ms": 1}}
    send(capture, "END_A", "infusion", body, 1)
    assert list(DeadLetter.objects.values_list("reason", flat=True)) == ["unknown_session"]
    assert shown(theirs) == (SessionStatus.PENDING, PumpState.IDLE, []), "pump A's answer rejected pump B's order"
    assert shown(mine) == (SessionStatus.RUNNING, PumpState.RUNNING, [])


# ---- order, unreadable payloads, replays and clearing -------------------------------------------------------------


def test_a_refused_completion_after_progress_in_the_same_batch_is_applied_after_it(django_capture_on_commit_callbacks):
    """Routine progress is applied in bulk; the completion read without its odd field must still come after the
    progress that arrived before it (else that progress, applied after the end, is an infusion without an order)."""
    from tests.support.ingest import ingest, report

    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_BATCH")
    progress = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 29.98, "infusionId": session.infusion_id}
    completion = {"completed": True, "infusionId": session.infusion_id, "timestamp": {"ms": 1}}
    ingest([report("END_BATCH", "progress", progress, 1), report("END_BATCH", "completion", completion, 1.1)], capture)
    assert shown(session) == (SessionStatus.COMPLETED, PumpState.IDLE, []), "the progress before it came after it"


@pytest.mark.parametrize("payload", [b'{"completed": true, "infusionId": ', b'"completed"', b"\xff\xfe"],
                         ids=["truncated", "not-object", "not-utf8"])  # fmt: skip
def test_a_completion_that_is_not_json_raises_the_alarm(django_capture_on_commit_callbacks, payload):
    from django.db import transaction

    from realtime.bridge.batch import BatchIngest
    from realtime.bridge.flood import ProgressFloodGuard
    from realtime.bridge.ingest import InboundMessage

    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_JUNK")
    with capture(execute=True), transaction.atomic():
        message = InboundMessage("devices/END_JUNK/completion", payload)
        BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run([message])
    assert unreadable("END_JUNK").session_id == session.pk
    assert shown(session)[0] == SessionStatus.RUNNING


def test_a_retained_replay_of_an_unreadable_completion_raises_nothing_again(django_capture_on_commit_callbacks):
    from tests.support.ingest import ingest, report

    capture = django_capture_on_commit_callbacks
    running_infusion(capture, "END_KEPT")
    body = {"completed": True, "infusionId": 17}
    ingest([report("END_KEPT", "completion", body, 1, retain=True)], capture)
    ingest([report("END_KEPT", "completion", body, 2, retain=True)], capture)
    assert unreadable("END_KEPT").count == 1, "a retained replay counted as news"


def test_a_retained_replay_of_a_completion_read_in_part_does_not_end_the_next_infusion(
    django_capture_on_commit_callbacks,
):
    """The original firmware retains its completions (naming no infusion): the broker hands the last one back at every
    re-subscribe. Applied once, its replay must not complete the infusion that runs since."""
    from tests.support.ingest import ingest, report

    capture = django_capture_on_commit_callbacks
    first = running_infusion(capture, "END_KEPT")
    body = {"completed": True, "timestamp": {"ms": 1}}
    ingest([report("END_KEPT", "completion", body, 1, retain=True)], capture)
    assert shown(first)[0] == SessionStatus.INTERRUPTED  # 2 mL still to go: not the order delivered (review 44, F3)
    second = confirmed_order("END_KEPT", parameters=READ_BACK)
    ingest([report("END_KEPT", "completion", body, 2, retain=True)], capture)
    assert shown(second)[:2] == (SessionStatus.RUNNING, PumpState.RUNNING), "a replayed completion ended the next order"


def test_the_unreadable_report_alarm_clears_when_its_infusion_moves(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "END_CLEAR")
    send(capture, "END_CLEAR", "completion", {"completed": True, "infusionId": 17}, 1)
    send(capture, "END_CLEAR", "status", {"status": "running", "infusionId": session.infusion_id}, 2)
    assert unreadable("END_CLEAR"), "a running heartbeat cleared it: the unread report may be about the order waiting"
    send(capture, "END_CLEAR", "status", {"status": "completed", "infusionId": session.infusion_id}, 3)
    ended = (SessionStatus.INTERRUPTED, PumpState.IDLE, ["infusion_interrupted"])  # 2 mL to go: review 44, F3
    assert shown(session) == ended, "the alarm stayed once the infusion ended"


def test_an_unreadable_rejection_alarms_on_the_waiting_order_until_it_ends(django_capture_on_commit_callbacks):
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_REJECT", has_presence=True)
    session = infusion_start(device_id="END_REJECT", order=make_order())
    start_sent(session)
    send(capture, "END_REJECT", "status", {"status": "received_start_command", "infusionId": session.infusion_id})
    send(capture, "END_REJECT", "infusion", {"infusionId": session.infusion_id, "confirmed": "no"}, 1)
    send(capture, "END_REJECT", "status", {"status": "idle"}, 1.1)
    alarm = unreadable("END_REJECT")
    assert alarm.session_id == session.pk and "its answer to a start" in alarm.message, alarm.message
    send(capture, "END_REJECT", "status", {"status": "rejected"}, 2)
    assert shown(session) == (SessionStatus.REJECTED, PumpState.IDLE, [])


def test_a_confirmation_whose_parameters_cannot_be_read_runs_the_order_unverified(django_capture_on_commit_callbacks):
    """The pump accepted the order; what it says it runs cannot be read: the order runs, never read back as a match."""
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_CONFIRM", has_presence=True)
    session = infusion_start(device_id="END_CONFIRM", order=make_order())
    body = {"infusionId": session.infusion_id, "confirmed": True, "parameters": {**READ_BACK, "flowRateMlMin": "2.0"}}
    send(capture, "END_CONFIRM", "infusion", body, 1)
    status, pump_state, alarms = shown(session)
    assert (status, pump_state, session.read_back) == (SessionStatus.RUNNING, PumpState.RUNNING, "unverified"), (
        f"an accepted order whose read-back could not be read is {status}, read back {session.read_back}"
    )
    assert alarms == ["parameters_unverified"], alarms
    assert session.confirmation["refusedFields"] == ["parameters"]


@pytest.mark.parametrize("on_evidence", [False, True], ids=["waiting", "running-on-evidence"])
def test_the_unverified_alarm_of_parameters_that_could_not_be_read_does_not_say_they_were_not_reported(
    django_capture_on_commit_callbacks, on_evidence
):
    """The pump reported its parameters, in a form refused (a rate as text): "did not report the parameters it runs"
    is not what happened, and a nurse told so may think its firmware sends none. It says they could not be read."""
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_CONFIRM", has_presence=True)
    session = infusion_start(device_id="END_CONFIRM", order=make_order())
    if on_evidence:  # it reported running first: the confirmation reads back an order already under way
        send(capture, "END_CONFIRM", "status", {"status": "running", "infusionId": session.infusion_id}, 0.5)
    body = {"infusionId": session.infusion_id, "confirmed": True, "parameters": {**READ_BACK, "flowRateMlMin": "2.0"}}
    send(capture, "END_CONFIRM", "infusion", body, 1)
    alarm = Alarm.objects.get(device__device_id="END_CONFIRM", type="parameters_unverified", state="active")
    assert "did not report" not in alarm.message and alarm.message.startswith(
        "The parameters the pump reported could not be read (flowRateMlMin: "
    ), f"the pump reported its parameters unreadably, and the alarm says: {alarm.message}"
    assert alarm.message.endswith("check its screen against the order"), alarm.message
    assert alarm.details["unreadable"].startswith("flowRateMlMin: "), alarm.details


def test_the_session_tells_the_panels_its_parameters_could_not_be_read_and_a_pumps_own_note_is_not_trusted(
    django_capture_on_commit_callbacks,
):
    """The read-back panels said "UNVERIFIED: the pump did not report the parameters it runs" and "not reported" in
    every row: `device:session` now says `parametersUnreadable`, from the server's note on the confirmation, never from
    a `refusedFields` the pump sent itself."""
    from devices.payloads import session_body
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("END_PANEL", has_presence=True)
    unreadable_run = infusion_start(device_id="END_PANEL", order=make_order())
    body = {"infusionId": unreadable_run.infusion_id, "confirmed": True, "parameters": {"flowRateMlMin": "2.0"}}
    send(capture, "END_PANEL", "infusion", body, 1)
    unreadable_run.refresh_from_db()
    assert session_body(unreadable_run).session.parametersUnreadable is True
    send(capture, "END_PANEL", "status", {"status": "stopped", "infusionId": unreadable_run.infusion_id}, 2)

    forged_run = infusion_start(device_id="END_PANEL", order=make_order())
    body = {"infusionId": forged_run.infusion_id, "confirmed": True, "refusedFields": ["parameters"]}
    send(capture, "END_PANEL", "infusion", body, 3)
    forged_run.refresh_from_db()
    assert forged_run.read_back == "unverified" and "refusedFields" not in forged_run.confirmation
    assert session_body(forged_run).session.parametersUnreadable is None, "a pump's own refusedFields was trusted"
