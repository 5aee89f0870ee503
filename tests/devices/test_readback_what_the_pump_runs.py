"""The read-back follows what the pump runs, whatever it confirmed (review 16), through the bridge's real batch ingest.

A confirmed order running off its rate alarms as an unverified one does; a later confirmation with other parameters
is read back; a rate seen within the evidence grace does not stop the grace naming what was never reported; a batch
judges each report by the infusion it names; a retained replay is no news; a bolus delivered off the order alarms;
a pump cycling through many wrong rates does not re-alert at every report; migration 0022 finds orders resumed
before it. A `control_` test shows the setup of the one before it alarms as expected by another road.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device, make_order
from tests.support.ingest import confirmed_order, report, send
from tests.support.ingest import ingest as apply

pytestmark = pytest.mark.django_db

AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}
GRACE_S = 5.0


@pytest.fixture
def grace(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "EVIDENCE_CONFIRMATION_GRACE_S": GRACE_S}


def _alarms(session) -> list[tuple[str, str]]:
    return sorted(Alarm.objects.filter(session=session).values_list("type", "state"))


def _active(session, alarm_type):
    return Alarm.objects.filter(session=session, type=alarm_type, state="active").first()


def _on_evidence(capture, device_id: str) -> InfusionSession:
    """An order of 2 mL/min (no bolus) under way on the pump's `started` naming it: read-back unverified."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    send(capture, device_id, "status", {"status": "started", "infusionId": session.infusion_id}, 0)
    return session


# ---- Finding 1: a confirmed order ("parameters match") is never compared with what the pump reports running --------


def test_a_confirmed_order_then_running_ten_times_its_rate_alarms(django_capture_on_commit_callbacks):
    """Order 2 mL/min (120 mL/h), confirmed as ordered: read-back `match`. Then the rate is changed at the pump's own
    screen (or a stored program recalled, or the firmware runs something else): its progress reports 20 mL/min
    (1,200 mL/h) every second. Nothing alarms, the session's read-back stays `match`, so the monitor's panel reads
    "Pump confirmed the order: parameters match" with "Pump reports 120.000 mL/h", while the overview's rate column
    (from the same progress) reads 1,200 mL/h. The same pump, had it never confirmed (read-back unverified), gets a
    high parameter_mismatch at its first such report (control below)."""
    capture = django_capture_on_commit_callbacks
    make_device("R16_MATCH")
    session = confirmed_order("R16_MATCH", parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    assert session.read_back == "match"
    running = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.5, "infusionId": session.infusion_id}
    send(capture, "R16_MATCH", "progress", running, 1)
    for n in range(3):
        send(capture, "R16_MATCH", "progress", {**running, "flowRate": 20.0, "deliveredVolumeMl": 1.0 + n}, 2 + n)
    session = InfusionSession.objects.get(pk=session.pk)
    body = payloads.session_body(session).session
    assert _active(session, "parameter_mismatch") is not None and session.read_back == "mismatch", (
        f"the pump reports running 1,200 mL/h for an order of 120 mL/h; read-back {session.read_back!r} (panel: "
        f"'parameters match', Pump reports {body.reportedParameters}), progressMismatch {body.progressMismatch}, "
        f"alarms {_alarms(session)}"
    )


def test_control_the_same_rate_on_an_unverified_order_alarms(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _on_evidence(capture, "R16_UNV_CTRL")
    send(capture, "R16_UNV_CTRL", "progress",
         {"status": "running", "flowRate": 20.0, "infusionId": session.infusion_id}, 2)  # fmt: skip
    assert _active(session, "parameter_mismatch") is not None


def test_a_second_confirmation_with_another_rate_is_not_ignored(django_capture_on_commit_callbacks):
    """The same order, confirmed as ordered; later the pump publishes a new (not retained, new bytes) confirmation of
    the same infusion saying it runs 20 mL/min (re-programmed at its screen and re-confirmed). `infusion_confirm`
    drops any confirmation of a running session that is not `unconfirmed_since`: no read-back, no alarm, the panel
    still says 'parameters match' with the old values. Only a replay (same bytes, retained) may be dropped."""
    capture = django_capture_on_commit_callbacks
    make_device("R16_RECONF")
    session = confirmed_order("R16_RECONF", parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    send(capture, "R16_RECONF", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                             "parameters": {**AS_ORDERED, "flowRateMlMin": 20.0}}, 5)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.read_back == "mismatch" and _active(session, "parameter_mismatch") is not None, (
        f"the pump confirmed 20 mL/min for an order of 2: read-back {session.read_back!r}, reportedParameters "
        f"{session.reported_parameters}, alarms {_alarms(session)}"
    )


# ---- Finding 2: parameters a confirmation left out after a mismatch seen in progress are named nowhere -------------


@pytest.mark.parametrize("parameters", [None, {"flowRateMlMin": 2.0, "plannedTimeMin": 15, "bolusEnabled": False}],
                         ids=["no-parameters", "volume-missing"])  # fmt: skip
def test_a_confirmation_leaving_parameters_out_after_a_progress_mismatch_names_them(
    grace, parameters, django_capture_on_commit_callbacks
):
    """(Failed at 8aa71d5 and 33a8ca1; passes since 0821ee7, which fixed it in parallel: kept as a guard.)
    A pump that reports infusing first (evidence: unverified), then progress at 20 mL/min for an order of 2
    (parameter_mismatch, read-back mismatch), then its confirmation without `parameters` (or without
    plannedVolumeMl). `readback_record` returns at once for a session already `mismatch` whose confirmation is not
    one ("what the pump was seen doing is not taken back"), so nothing raises `parameters_unverified` and the
    mismatch alarm does not name the missing fields (3bc4b46 names them only for a confirmation that itself
    differs); the grace's check wants read-back `unverified`, so it never raises it either. The same messages with
    the confirmation first raise `parameters_unverified` (control below): what a nurse is told about the volume
    depends on which message came first. Once the rate is corrected and the mismatch resolved, nothing at all
    says the volume, time and bolus were never reported."""
    capture = django_capture_on_commit_callbacks
    device_id = f"R16_MISS_{'N' if parameters is None else 'V'}"
    session = _on_evidence(capture, device_id)
    infusion_id, now = session.infusion_id, timezone.now()
    send(capture, device_id, "progress", {"status": "running", "flowRate": 20.0, "infusionId": infusion_id}, 1)
    confirmation = {"infusionId": infusion_id, "confirmed": True}
    send(capture, device_id, "infusion", {**confirmation, **({"parameters": parameters} if parameters else {})}, 2)
    with capture(execute=True):
        Housekeeping().tick(now + timedelta(seconds=GRACE_S + 5), connected_since=now - timedelta(hours=1))
    mismatch = _active(session, "parameter_mismatch")
    named = (mismatch.details.get("missing") or []) if mismatch else []
    assert _active(session, "parameters_unverified") is not None or "plannedVolumeMl" in named, (
        f"the pump never reported its planned volume; alarms {_alarms(session)}, mismatch alarm's text "
        f"{mismatch.message if mismatch else None!r}, missing {named}"
    )


def test_a_progress_mismatch_within_the_grace_never_lets_the_grace_raise_unverified(
    grace, django_capture_on_commit_callbacks
):
    """The same without any confirmation: evidence, then progress at 20 mL/min within the grace (mismatch). The
    nurse corrects the rate at the pump and resolves the mismatch (checked_at_pump); the pump runs 2 mL/min as
    ordered. No confirmation ever comes. The grace's check wants read-back `unverified`, and the session is
    `mismatch` for good, so `parameters_unverified` is never raised: the volume, time and bolus the pump runs were
    never reported, and no alarm says so. Without the transient wrong rate, the grace raises it after 5 s."""
    from devices.services.alarm_rules import alarm_resolve
    from tests.factories import make_user

    capture = django_capture_on_commit_callbacks
    session = _on_evidence(capture, "R16_NOCONF")
    infusion_id, now = session.infusion_id, timezone.now()
    send(capture, "R16_NOCONF", "progress", {"status": "running", "flowRate": 20.0, "infusionId": infusion_id}, 1)
    mismatch = _active(session, "parameter_mismatch")
    alarm_resolve(alarm_id=mismatch.pk, user=make_user("r16-nurse", is_staff=True), reason="checked_at_pump",
                  note="rate corrected at the pump", alerts=mismatch.alerts)  # fmt: skip
    for n in range(3):
        running = {"status": "running", "flowRate": 2.0, "infusionId": infusion_id}
        send(capture, "R16_NOCONF", "progress", running, 5 + n)
    with capture(execute=True):
        Housekeeping().tick(now + timedelta(seconds=GRACE_S + 3), connected_since=now - timedelta(hours=1))
    assert _active(session, "parameters_unverified") is not None, (
        f"no confirmation ever came; alarms {_alarms(session)}, read-back "
        f"{InfusionSession.objects.get(pk=session.pk).read_back!r}"
    )


def test_control_the_confirmation_first_raises_unverified(grace, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _on_evidence(capture, "R16_MISS_CTRL")
    infusion_id = session.infusion_id
    send(capture, "R16_MISS_CTRL", "infusion", {"infusionId": infusion_id, "confirmed": True}, 1)
    send(capture, "R16_MISS_CTRL", "progress", {"status": "running", "flowRate": 20.0, "infusionId": infusion_id}, 2)
    assert _active(session, "parameters_unverified") is not None
    assert _active(session, "parameter_mismatch") is not None


# ---- Finding 3: the bulk path compares a batch's rates by its newest report's infusion ------------------------------


def _two_orders(capture, device_id: str):
    """Order A (10 mL/min) ran and was ended by a person's "End record" (the pump still had it, silent past its
    heartbeat: a ghost, as far as the server could tell); order B (2 mL/min) under way on evidence (unverified)."""
    from django.conf import settings

    from devices.services.requests import infusion_record_end
    from tests.factories import make_user

    make_device(device_id)
    older_order = make_order(flow_rate_ml_min=10.0, planned_volume_ml=150.0, bolus_enabled=False, bolus_volume_ml=0.0)
    older = infusion_start(device_id=device_id, order=older_order)
    silent = -(settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 2)  # End record is refused for a pump reporting it running
    send(capture, device_id, "status", {"status": "started", "infusionId": older.infusion_id}, silent)
    send(capture, device_id, "progress", {"status": "running", "flowRate": 10.0, "infusionId": older.infusion_id},
         silent + 1)  # fmt: skip
    infusion_record_end(infusion_id=older.infusion_id, user=make_user(f"u-{device_id}", is_staff=True),
                        reason="pump swapped")  # fmt: skip
    newer = infusion_start(device_id=device_id, order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    send(capture, device_id, "status", {"status": "started", "infusionId": newer.infusion_id}, 3)
    return older, newer


def test_a_batch_ending_on_a_late_copy_of_another_infusion_still_compares_the_rate(django_capture_on_commit_callbacks):
    """One batch (a backlog) of one pump's routine progress: two reports of order B at 20 mL/min (order 2), then a
    late copy naming the older infusion A. `_pump_progress` decides the batch's session from its newest report
    (`_session_owning`): that names A, so it returns before `readback_progress_check`, and B's 10x rate is never
    compared. The same reports sent one per batch raise parameter_mismatch (control below)."""
    capture, now = django_capture_on_commit_callbacks, timezone.now()
    older, newer = _two_orders(capture, "R16_BULK")
    b_running = {"status": "running", "flowRate": 20.0, "infusionId": newer.infusion_id}
    apply([report("R16_BULK", "progress", b_running, at=now + timedelta(seconds=4)),
           report("R16_BULK", "progress", {**b_running, "deliveredVolumeMl": 0.4}, at=now + timedelta(seconds=5)),
           report("R16_BULK", "progress", {"status": "running", "flowRate": 10.0, "infusionId": older.infusion_id},
                  at=now + timedelta(seconds=5.5))], capture)  # fmt: skip
    newer = InfusionSession.objects.get(pk=newer.pk)
    assert _active(newer, "parameter_mismatch") is not None, (
        f"order B (2 mL/min) was reported running 20 mL/min twice in this batch; read-back {newer.read_back!r}, "
        f"alarms {_alarms(newer)}"
    )


def test_control_the_same_reports_one_per_batch_alarm(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    older, newer = _two_orders(capture, "R16_ONE")
    b_running = {"status": "running", "flowRate": 20.0, "infusionId": newer.infusion_id}
    send(capture, "R16_ONE", "progress", b_running, 4)
    send(capture, "R16_ONE", "progress", {**b_running, "deliveredVolumeMl": 0.4}, 5)
    send(capture, "R16_ONE", "progress", {"status": "running", "flowRate": 10.0, "infusionId": older.infusion_id}, 5.5)
    assert _active(InfusionSession.objects.get(pk=newer.pk), "parameter_mismatch") is not None


def test_a_batch_does_not_charge_another_infusions_rate_to_the_order(django_capture_on_commit_callbacks):
    """The other way round: a late copy of A's progress (10 mL/min, A's own rate) then B's own at 2 mL/min (as
    ordered) in one batch. All the batch's running rates are compared with B's order: B gets a high
    parameter_mismatch and its session's `progressMismatch` says the pump runs 600 mL/h, a rate B never ran."""
    capture, now = django_capture_on_commit_callbacks, timezone.now()
    older, newer = _two_orders(capture, "R16_CHARGE")
    apply([report("R16_CHARGE", "progress", {"status": "running", "flowRate": 10.0, "infusionId": older.infusion_id},
                  at=now + timedelta(seconds=4)),
           report("R16_CHARGE", "progress", {"status": "running", "flowRate": 2.0, "infusionId": newer.infusion_id},
                  at=now + timedelta(seconds=5))], capture)  # fmt: skip
    newer = InfusionSession.objects.get(pk=newer.pk)
    assert newer.read_back == "unverified" and _active(newer, "parameter_mismatch") is None, (
        f"order B only ever reported 2 mL/min, as ordered; read-back {newer.read_back!r}, progressMismatch "
        f"{newer.mismatch_flow_rate_ml_min} mL/min, alarms {_alarms(newer)}"
    )


# ---- Finding 4: a retained progress replay is taken as evidence: an interrupted order "resumes" on a replay --------


def test_a_retained_progress_replay_does_not_resume_an_interrupted_order(django_capture_on_commit_callbacks):
    """A pump that retains its progress and sends a bootId but no `seq` (the contract allows both; "retained messages
    are state, not news"). With a `seq` the receipt (pump, bootId, seq, digest) drops the replay: this test passes
    then (checked at 33a8ca1).
    Order X runs; the pump restarts (new bootId) and comes back idle: X is `interrupted` with a high
    infusion_interrupted. The bridge then reconnects and the broker hands back the retained progress from before the
    restart (retain flag set, boot-1). `_restart_check` skips a retained report, but `_evidence_check` does not: X
    runs again (`infusion_running_late`), its infusion_interrupted is CLEARED ("the pump reports it running"), and
    the screen shows X running on a pump that is idle. A replayed status or confirmation is told by its digest;
    progress is never (`_seen_before`: `checked.kind != topics.PROGRESS`)."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R16_RETAIN", timezone.now()
    make_device(device_id)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    progress = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id,
                "bootId": "boot-1"}  # fmt: skip
    apply([report(device_id, "progress", progress, at=now + timedelta(seconds=1), retain=True)], capture)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=2))],
          capture)  # fmt: skip
    apply([report(device_id, "status", {"status": "idle", "bootId": "boot-2"}, at=now + timedelta(seconds=3))],
          capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
    assert _active(session, "infusion_interrupted") is not None
    # the bridge reconnects: the broker replays the retained progress from before the restart
    apply([report(device_id, "progress", progress, at=now + timedelta(seconds=60), retain=True)], capture)
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.INTERRUPTED and _active(session, "infusion_interrupted") is not None, (
        f"a retained copy of progress from before the restart resumed the order: status {session.status!r} "
        f"({session.status_reason!r}), alarms {_alarms(session)}"
    )


# ---- Finding 5 (deploy): 0022 leaves an order resumed before the upgrade with its pre-restart confirmation ----------


def test_the_migration_marks_an_order_resumed_after_a_restart_before_the_upgrade(django_capture_on_commit_callbacks):
    """Before 0022 (fe65d72) an order the pump resumed after a restart read `unverified` and kept its confirmation from
    before the restart. 0022 stamps `unconfirmed_since` only where `confirmation IS NULL`, and its docstring says
    such an order "cannot be told apart". It can: under the old code a session whose confirmation reported every
    parameter reads `unverified` only when a restart voided it (its reason says "... after interrupted" too).
    Unstamped, after the upgrade: the panels show the pre-restart confirmation under "Pump reports" beneath
    UNVERIFIED (what 1c97016 removed), no parameters_unverified ever comes, and a confirmation the pump sends now is
    dropped (`infusion_confirm` reads back only a session with `unconfirmed_since`): it can never read `match`."""
    from importlib import import_module

    from django.apps import apps

    capture = django_capture_on_commit_callbacks
    stamp = import_module("devices.migrations.0022_session_unconfirmed_since").stamp_unconfirmed
    make_device("R16_MIG")
    session = confirmed_order("R16_MIG", parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    resumed_at = timezone.now() - timedelta(minutes=5)
    InfusionSession.objects.filter(pk=session.pk).update(  # as fe65d72 left an order resumed after a restart
        read_back="unverified", status_reason="progress after interrupted", status_changed_at=resumed_at,
        running_evidence="progress", unconfirmed_since=None)  # fmt: skip
    stamp(apps, None)
    send(capture, "R16_MIG", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                          "parameters": AS_ORDERED, "confirmedAt": 99}, 1)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.unconfirmed_since is not None or session.read_back == "match", (
        f"an order resumed after a restart before the upgrade: unconfirmedSince {session.unconfirmed_since} (the "
        f"panel shows the pre-restart confirmation as the pump's), and its new confirmation as ordered left the "
        f"read-back {session.read_back!r}"
    )


# ---- Finding 6: what a bolus report says was delivered is never read back ------------------------------------------


@pytest.mark.parametrize("ordered_bolus, delivered", [(0.0, 5.0), (5.0, 50.0)], ids=["none-ordered", "ten-times"])
def test_a_bolus_delivered_off_the_order_alarms(ordered_bolus, delivered, django_capture_on_commit_callbacks):
    """Order confirmed as ordered (bolus disabled, or 5 mL). The pump then reports BOLUS_COMPLETED with
    `bolusDelivered` 5 mL (none ordered) or 50 mL (10x). `_bolus` only looks for a pending or ended order to run on
    evidence; for the running order the report changes nothing: no alarm, read-back still `match`."""
    capture, device_id = django_capture_on_commit_callbacks, f"R16_BOLUS_{int(delivered)}"
    make_device(device_id)
    confirmed = {**AS_ORDERED, "bolusEnabled": ordered_bolus > 0, **({"bolusVolumeMl": ordered_bolus}
                                                                     if ordered_bolus else {})}  # fmt: skip
    session = confirmed_order(device_id, parameters=confirmed, bolus_enabled=ordered_bolus > 0,
                              bolus_volume_ml=ordered_bolus)  # fmt: skip
    assert session.read_back == "match"
    send(capture, device_id, "bolus", {"action": "BOLUS_COMPLETED", "infusionId": session.infusion_id,
                                       "bolusDelivered": delivered}, 2)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert Alarm.objects.filter(session=session, state="active").exists(), (
        f"the pump reports a bolus of {delivered} mL delivered for an order with a bolus of {ordered_bolus} mL: "
        f"read-back {session.read_back!r}, alarms {_alarms(session)}"
    )


def test_the_original_firmwares_bolus_report_is_read_back_against_the_order(django_capture_on_commit_callbacks):
    """The original firmware's own sequence (shared/fixtures/legacy-firmware.json): received_start_command, the
    retained bolus report (evidence), then the confirmation as ordered 20 ms later. Its bolus report says 50 mL were
    delivered for an order of 5: the session reads `match` ("Pump confirmed the order: parameters match"), no alarm."""
    import copy

    from tests.clinical.scenario import legacy_step, legacy_steps

    capture, device_id, now = django_capture_on_commit_callbacks, "R16_LEG_BOLUS", timezone.now()
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())  # 2 mL/min, 30 mL, 15 min, bolus 5 mL
    steps = legacy_steps("infusion", session.infusion_id, device_id)
    bolus = copy.deepcopy(legacy_step(steps, "/bolus"))
    bolus["payload"]["bolusDelivered"] = 50.0
    for at_ms, step in [(0, legacy_step(steps, "/status", status="received_start_command")), (10, bolus),
                        (30, legacy_step(steps, "/infusion"))]:  # fmt: skip
        apply([report("", "", step["payload"], topic=step["topic"], retain=step["retain"],
                      at=now + timedelta(milliseconds=at_ms))], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.read_back != "match" or Alarm.objects.filter(session=session, state="active").exists(), (
        f"the pump reported a 50 mL bolus delivered for an order of 5 mL: read-back {session.read_back!r}, alarms "
        f"{_alarms(session)}"
    )


# ---- Finding 7 (low): a pump cycling through more than RATES_NAMED wrong rates re-alerts at every report -----------


def test_a_pump_cycling_through_twelve_wrong_rates_does_not_realert_at_every_report(django_capture_on_commit_callbacks):
    """An unverified order of 2 mL/min whose pump reports a wrong rate that jumps about (a broken flow sensor): 12
    rates, each more than 10 % from the others, over and over. The nurse acknowledges the mismatch after the first
    round. The alarm names only the newest 10 rates (RATES_NAMED), so on every later round each of the rates pushed
    out is "news" again: the acknowledged alarm re-alerts (sound, notification, escalation from tier 0) at almost
    every report, for ever. alarm_flood has a memory of 256 types and an interval for this; the mismatch has none."""
    from devices.services.alarms import alarm_acknowledge
    from tests.factories import make_user

    capture = django_capture_on_commit_callbacks
    session = _on_evidence(capture, "R16_CYCLE")
    rates = [2.5 * 1.15**k for k in range(12)]
    at = 1.0
    for rate in rates:
        send(capture, "R16_CYCLE", "progress", {"status": "running", "flowRate": rate,
                                                "infusionId": session.infusion_id}, at)  # fmt: skip
        at += 1
    alarm = _active(session, "parameter_mismatch")
    nurse = make_user("r16-ack", is_staff=True)
    alerts_before = alarm.alerts
    for _ in range(2):
        for rate in rates:
            alarm = _active(session, "parameter_mismatch")
            if alarm.acknowledged_at is None:
                alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
            send(capture, "R16_CYCLE", "progress", {"status": "running", "flowRate": rate,
                                                    "infusionId": session.infusion_id}, at)  # fmt: skip
            at += 1
    realerts = _active(session, "parameter_mismatch").alerts - alerts_before
    assert realerts <= 2, (
        f"the same 12 wrong rates, round and round for 24 reports after the nurse acknowledged: {realerts} re-alerts"
    )
