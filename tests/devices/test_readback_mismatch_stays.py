"""Review 12: a pump seen infusing 10x the ordered rate, whose confirmation then echoed the order, was shown
"Pump confirmed the order: parameters match": the read-back's `mismatch` (from its running progress) was overwritten
by the confirmation's `match`, and the rate was never compared again (once its alarm was resolved, nothing said it).

The sequence (firmware with infusionId, confirming once its first reports are out, or a confirmation held up in the
broker): `started` naming the order (evidence: running, read-back `unverified`), running progress at 20 mL/min for
an order of 2 mL/min (`parameter_mismatch` high, read-back `mismatch`), then the confirmation with the order's
`parameters`. Through the bridge's own batch (`BatchIngest`), as the pump's messages arrive.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession, WardSilence
from devices.services.alarm_rules import alarm_resolve
from devices.services.alarms import alarm_acknowledge
from devices.services.sessions import infusion_start
from devices.services.silences import ward_silence
from devices.states import SessionStatus
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.ingest import confirmed_order, report, send
from tests.support.ingest import ingest as apply

pytestmark = pytest.mark.django_db


def test_a_matching_confirmation_does_not_overwrite_a_rate_mismatch_seen_running(django_capture_on_commit_callbacks):
    make_device("RB_LATE")
    session = infusion_start(device_id="RB_LATE", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id = session.infusion_id
    send(django_capture_on_commit_callbacks, "RB_LATE", "status", {"status": "started", "infusionId": infusion_id}, 1)
    send(django_capture_on_commit_callbacks, "RB_LATE", "progress",
           {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.3, "infusionId": infusion_id}, 2)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"  # as documented: the panel turns
    send(django_capture_on_commit_callbacks, "RB_LATE", "infusion",
           {"infusionId": infusion_id, "confirmed": True,
            "parameters": {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}},
           3)  # fmt: skip
    send(django_capture_on_commit_callbacks, "RB_LATE", "progress",
           {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.6, "infusionId": infusion_id}, 4)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    alarms = list(Alarm.objects.filter(session=session).values_list("type", "state"))
    assert session.read_back == "mismatch", (
        f"the pump was seen infusing 20 mL/min for an order of 2; after its confirmation echoed the order the screen "
        f"says read-back {session.read_back!r} ('Pump confirmed the order: parameters match'), alarms {alarms}"
    )


def test_a_wrong_rate_coming_back_after_a_resolved_mismatch_alarms_again(django_capture_on_commit_callbacks):
    make_device("RB_AGAIN")
    session = infusion_start(device_id="RB_AGAIN", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id, capture = session.infusion_id, django_capture_on_commit_callbacks
    send(capture, "RB_AGAIN", "status", {"status": "started", "infusionId": infusion_id}, 1)
    running = {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.3, "infusionId": infusion_id}
    send(capture, "RB_AGAIN", "progress", running, 2)
    first = Alarm.objects.get(session=session, type="parameter_mismatch", state="active")
    send(capture, "RB_AGAIN", "progress", {**running, "deliveredVolumeMl": 0.6}, 3)
    assert Alarm.objects.get(pk=first.pk).count == 1, "a mismatch said and still active is not counted per progress"
    alarm_resolve(alarm_id=first.pk, user=make_user("rb-nurse", is_staff=True), reason="checked_at_pump",
                  note="looked at it", alerts=1)  # fmt: skip
    send(capture, "RB_AGAIN", "progress", {**running, "flowRate": 2.0, "deliveredVolumeMl": 0.9}, 4)
    assert not Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").exists(), (
        "a pump back on its order's rate is not alarmed again"
    )
    send(capture, "RB_AGAIN", "progress", {**running, "deliveredVolumeMl": 1.2}, 5)
    again = Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").first()
    assert again is not None and again.pk != first.pk, (
        "the pump runs 10x its order's rate again after the mismatch was resolved, and nothing says so"
    )
    assert InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"


def test_a_late_confirmation_clears_unverified_on_a_mismatch(settings, django_capture_on_commit_callbacks):
    """Review 13: `parameters_unverified` (no confirmation within the grace) stayed active, saying the pump did not
    report its parameters, after a confirmation reported them on a session kept a mismatch."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "EVIDENCE_CONFIRMATION_GRACE_S": 5.0}
    make_device("RB_UNV")
    session = infusion_start(device_id="RB_UNV", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id, capture, now = session.infusion_id, django_capture_on_commit_callbacks, timezone.now()
    send(capture, "RB_UNV", "status", {"status": "started", "infusionId": infusion_id}, 0)
    with capture(execute=True):
        Housekeeping().tick(now + timedelta(seconds=10), connected_since=now - timedelta(hours=1))
    assert Alarm.objects.filter(session=session, type="parameters_unverified", state="active").exists()
    send(capture, "RB_UNV", "progress", {"status": "running", "flowRate": 20.0, "infusionId": infusion_id}, 11)
    send(capture, "RB_UNV", "infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": {
        "flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}}, 12)  # fmt: skip
    active = set(Alarm.objects.filter(session=session, state="active").values_list("type", flat=True))
    assert active == {"parameter_mismatch"}, f"its parameters reported, still said unreported: {active}"


# Review 14: a resolve never silences a rate off the order (in a batch, or coming back after a correction), and an
# order resumed after a restart is compared again, whatever its confirmation had verified before the restart.


def _active_mismatch(session):
    return Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").first()


def _mismatch_resolved_at(capture, device_id, rate):
    """Order of 2 mL/min, under way on evidence, seen at `rate`; its parameter_mismatch resolved by a nurse."""
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    send(capture, device_id, "status", {"status": "started", "infusionId": session.infusion_id}, 1)
    running = {"status": "running", "flowRate": rate, "deliveredVolumeMl": 0.3, "infusionId": session.infusion_id}
    send(capture, device_id, "progress", running, 2)
    first = _active_mismatch(session)
    assert first is not None
    alarm_resolve(alarm_id=first.pk, user=make_user(f"n-{device_id}", is_staff=True), reason="checked_at_pump",
                  note="checked", alerts=1)  # fmt: skip
    return session, running


def test_a_ten_times_rate_in_the_same_batch_as_the_resolved_rate_alarms(django_capture_on_commit_callbacks):
    """Review 14: a nurse resolved the mismatch at 2.5 mL/min (order 2); the pump's next batch (the bridge applies a
    pump's messages in batches) holds 20 mL/min then 2.5: a rule remembering "resolved at 2.5" and comparing only the
    batch's last rate let it pass (reverted: any rate off the order alarms again after a resolve)."""
    capture = django_capture_on_commit_callbacks
    session, running = _mismatch_resolved_at(capture, "R14_BATCH", 2.5)
    now = timezone.now()
    apply([report("R14_BATCH", "progress", {**running, "flowRate": 20.0, "deliveredVolumeMl": 0.6},
                  at=now + timedelta(seconds=3)),
           report("R14_BATCH", "progress", {**running, "flowRate": 2.5, "deliveredVolumeMl": 0.9},
                  at=now + timedelta(seconds=4))], capture)  # fmt: skip
    assert _active_mismatch(session) is not None, (
        "the pump was seen running 20 mL/min (10x the order of 2) after a mismatch resolved at 2.5 mL/min: no alarm, "
        "because only the batch's last off-order rate (2.5) is compared with the resolved one"
    )


def test_control_the_same_ten_times_rate_alone_alarms(django_capture_on_commit_callbacks):
    """Control for the test above (passes on main): the same 20 mL/min as its own message alarms."""
    capture = django_capture_on_commit_callbacks
    session, running = _mismatch_resolved_at(capture, "R14_ALONE", 2.5)
    send(capture, "R14_ALONE", "progress", {**running, "flowRate": 20.0, "deliveredVolumeMl": 0.6}, 3)
    assert _active_mismatch(session) is not None


def test_the_wrong_rate_coming_back_after_the_pump_was_corrected_alarms(django_capture_on_commit_callbacks):
    """A nurse resolves a 10x mismatch (20 mL/min for an order of 2) after correcting the pump at the bedside
    (reason checked_at_pump: the only reason a nurse has for it). Progress shows the pump on its order's rate for
    an hour. Then the pump runs 20 mL/min again (re-programmed by mistake, a stored program recalled): nothing
    alarms for the rest of the infusion, because the last resolved alarm's rate is 20. (The commit's own test
    asserted this silence before review 14.)"""
    capture = django_capture_on_commit_callbacks
    session, running = _mismatch_resolved_at(capture, "R14_BACK", 20.0)
    for n in range(3):
        send(capture, "R14_BACK", "progress", {**running, "flowRate": 2.0, "deliveredVolumeMl": 1.0 + n}, 3 + n)
    assert _active_mismatch(session) is None, "on its order's rate: no alarm (control)"
    send(capture, "R14_BACK", "progress", {**running, "flowRate": 20.0, "deliveredVolumeMl": 9.0}, 3600)
    assert _active_mismatch(session) is not None, (
        "the pump, corrected to its order's rate, runs 10x the order again an hour later and nothing says so"
    )


def test_a_confirmed_order_resumed_after_a_restart_at_ten_times_its_rate_is_compared(
    django_capture_on_commit_callbacks,
):
    """Review 14: the late-running path set read_back 'unverified' only when the order never confirmed. An order
    confirmed as ordered (read-back 'match') that the pump loses to a restart (interrupted) and then reports running
    again keeps 'match' from BEFORE the restart: `readback_progress_check` never compares its rate, so a pump
    re-entered / resumed at 20 mL/min for an order of 2 raises no parameter_mismatch, and the screen says
    'parameters match'. A restart voids what the pre-restart confirmation verified."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R14_RESUME", timezone.now()
    make_device(device_id)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = confirmed_order(device_id, parameters={"flowRateMlMin": 2.0, "plannedVolumeMl": 30,
                                                     "plannedTimeMin": 15, "bolusEnabled": False},
                              bolus_enabled=False, bolus_volume_ml=0.0)  # fmt: skip
    progress = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.5, "infusionId": session.infusion_id,
                "bootId": "boot-1"}  # fmt: skip
    apply([report(device_id, "progress", progress, at=now + timedelta(seconds=1))], capture)
    session = InfusionSession.objects.get(pk=session.pk)
    assert (session.status, session.read_back) == (SessionStatus.RUNNING, "match"), (session.status, session.read_back)
    apply([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=2))],
          capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
    for n in range(3):
        apply(
            [
                report(
                    device_id,
                    "progress",
                    {**progress, "flowRate": 20.0, "deliveredVolumeMl": 1.0 + n, "bootId": "boot-2"},
                    at=now + timedelta(seconds=3 + n),
                )
            ],
            capture,
        )
    session = InfusionSession.objects.get(pk=session.pk)
    alarms = list(Alarm.objects.filter(session=session).values_list("type", "state"))
    assert session.status == SessionStatus.RUNNING, session.status
    assert ("parameter_mismatch", "active") in alarms, (
        f"after a restart the pump runs the order at 20 mL/min (order 2); read-back {session.read_back!r}, "
        f"alarms {alarms}"
    )


def test_a_mismatched_confirmation_that_leaves_a_field_out_keeps_it_named(settings, django_capture_on_commit_callbacks):
    """Review 14 (e07ed64's note): a confirmation that differs from the order AND leaves a field out is a `mismatch`
    naming only the differing fields. It cleared the grace's `parameters_unverified` (the parameters, it said, were
    reported, all of them), so the missing planned volume was named nowhere a nurse sees. Now that alarm stays, and
    the mismatch alarm names what was not reported too."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "EVIDENCE_CONFIRMATION_GRACE_S": 5.0}
    make_device("RB_PART")
    session = infusion_start(device_id="RB_PART", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id, capture, now = session.infusion_id, django_capture_on_commit_callbacks, timezone.now()
    send(capture, "RB_PART", "status", {"status": "started", "infusionId": infusion_id}, 0)
    with capture(execute=True):
        Housekeeping().tick(now + timedelta(seconds=10), connected_since=now - timedelta(hours=1))
    send(capture, "RB_PART", "infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": {
        "flowRateMlMin": 20.0, "plannedTimeMin": 15, "bolusEnabled": False}}, 11)  # fmt: skip
    active = {alarm.type: alarm for alarm in Alarm.objects.filter(session=session, state="active")}
    assert set(active) == {"parameter_mismatch", "parameters_unverified"}, (
        f"the confirmation left the planned volume out, and its parameters_unverified was cleared: {set(active)}"
    )
    mismatch = active["parameter_mismatch"]
    assert "plannedVolumeMl" in mismatch.message and mismatch.details.get("missing") == ["plannedVolumeMl"], (
        f"the mismatch alarm does not name the parameter the pump left out: {mismatch.message!r}, {mismatch.details}"
    )


def test_a_first_confirmation_that_differs_and_leaves_a_field_out_names_both(django_capture_on_commit_callbacks):
    """The same confirmation answering the START (no grace, no `parameters_unverified`: `mismatch` whatever else is
    missing): the one alarm it raises is the only place the missing planned volume can be named."""
    make_device("RB_PART1")
    session = confirmed_order("RB_PART1", parameters={"flowRateMlMin": 20.0, "plannedTimeMin": 15,
                                                      "bolusEnabled": False},
                              bolus_enabled=False, bolus_volume_ml=0.0)  # fmt: skip
    mismatch = _active_mismatch(session)
    assert session.read_back == "mismatch" and mismatch is not None, session.read_back
    assert "flowRateMlMin" in mismatch.message and "plannedVolumeMl" in mismatch.message, mismatch.message
    assert mismatch.details.get("missing") == ["plannedVolumeMl"], mismatch.details


# One `parameter_mismatch` per session names everything the read-back has seen (found after a69a60c): a confirmation
# off the order (rate 2 as ordered, planned volume 50 for 30) repeating the active alarm raised from progress at
# 1,200 mL/h replaced its message and details with its own ("… (plannedVolumeMl)", no `reportedFlowRate`) and alerted
# nobody; the reverse, a rate off the order running after a confirmation's mismatch, was not named at all (the alarm
# was active: "said already"). A repeat naming a field or a rate not named before alerts again (when in doubt, alarm);
# one naming nothing new does not, and progress at a rate named already is not counted.

VOLUME_OFF = {"flowRateMlMin": 2.0, "plannedVolumeMl": 50, "plannedTimeMin": 15, "bolusEnabled": False}


def _notifications(emitted) -> list:
    return [change for change in emitted if change.event == "device:notification"]


def _under_way(capture, device_id: str) -> InfusionSession:
    """An order of 2 mL/min (30 mL, 15 min, no bolus) the pump reports started: under way on evidence, unverified."""
    make_device(device_id, ward=make_ward(f"w-{device_id.lower()}"))
    session = infusion_start(device_id=device_id, order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    send(capture, device_id, "status", {"status": "started", "infusionId": session.infusion_id}, 1)
    return session


def _running(session: InfusionSession, rate: float, delivered: float) -> dict:
    return {"status": "running", "flowRate": rate, "deliveredVolumeMl": delivered, "infusionId": session.infusion_id}


def _confirmation(session: InfusionSession, parameters: dict) -> dict:
    return {"infusionId": session.infusion_id, "confirmed": True, "parameters": parameters}


def _acknowledged(session: InfusionSession, emitted) -> Alarm:
    """The session's active parameter_mismatch, acknowledged by a nurse who read it; changes recorded after it."""
    alarm = _active_mismatch(session)
    alarm = alarm_acknowledge(alarm_id=alarm.pk, user=make_user(f"ack-{alarm.pk}-{alarm.alerts}"), alerts=alarm.alerts)
    emitted.clear()
    return alarm


def test_a_confirmation_off_the_order_after_a_rate_seen_running_keeps_the_rate_and_alerts_again(
    django_capture_on_commit_callbacks, emitted
):
    capture = django_capture_on_commit_callbacks
    session = _under_way(capture, "RBM_CONF")
    send(capture, "RBM_CONF", "progress", _running(session, 20.0, 0.3), 2)
    first = _acknowledged(session, emitted)
    send(capture, "RBM_CONF", "infusion", _confirmation(session, VOLUME_OFF), 3)
    alarm = _active_mismatch(session)
    assert alarm.pk == first.pk
    assert "1200 mL/h" in alarm.message and "plannedVolumeMl" in alarm.message, (
        f"the alarm no longer names what it has seen (1,200 mL/h running, the planned volume confirmed at 50 for "
        f"30): {alarm.message!r}"
    )
    assert alarm.details.get("reportedFlowRate") == 20.0 and {"flowRate", "plannedVolumeMl"} <= set(
        alarm.details.get("fields", [])
    ), f"the alarm's details lost the rate seen running or the field confirmed off the order: {alarm.details}"
    assert alarm.details.get("reported") == VOLUME_OFF, alarm.details
    assert alarm.acknowledged_at is None and alarm.alerts == first.alerts + 1 and _notifications(emitted), (
        f"the planned volume off the order is news to the nurse who acknowledged 1,200 mL/h, yet the alarm stays "
        f"acknowledged (alerts {alarm.alerts}, notifications {len(_notifications(emitted))}): nobody is told"
    )
    assert InfusionSession.objects.get(pk=session.pk).mismatch_flow_rate_ml_min == 20.0


def test_a_rate_seen_running_after_a_confirmation_off_the_order_is_named_and_alerts_again(
    django_capture_on_commit_callbacks, emitted
):
    capture = django_capture_on_commit_callbacks
    make_device("RBM_RATE", ward=make_ward("w-rbm-rate"))
    session = confirmed_order("RBM_RATE", parameters=VOLUME_OFF, bolus_enabled=False, bolus_volume_ml=0.0)
    assert session.read_back == "mismatch" and "plannedVolumeMl" in _active_mismatch(session).message
    first = _acknowledged(session, emitted)
    send(capture, "RBM_RATE", "progress", _running(session, 20.0, 0.3), 2)
    alarm = _active_mismatch(session)
    assert alarm.pk == first.pk
    assert "1200 mL/h" in alarm.message and "plannedVolumeMl" in alarm.message, (
        f"the pump runs 1,200 mL/h (order 120) and its active mismatch alarm does not say so: {alarm.message!r}"
    )
    assert alarm.details.get("reportedFlowRate") == 20.0 and "plannedVolumeMl" in alarm.details.get("fields", []), (
        alarm.details
    )
    assert alarm.acknowledged_at is None and alarm.alerts == first.alerts + 1 and _notifications(emitted), (
        f"a rate ten times the order, seen running, is news to the nurse who acknowledged the planned volume, yet "
        f"the alarm stays acknowledged (alerts {alarm.alerts}, notifications {len(_notifications(emitted))})"
    )
    seen = InfusionSession.objects.get(pk=session.pk)
    assert seen.mismatch_flow_rate_ml_min == 20.0, "the panels do not show the rate seen running (progressMismatch)"
    counted = _acknowledged(session, emitted)
    for n, rate in enumerate((20.0, 21.0, 19.2)):  # the same wrong rate (a pump's rate wanders by a few %)
        send(capture, "RBM_RATE", "progress", _running(session, rate, 0.6 + n), 3 + n)
    alarm = _active_mismatch(session)
    assert (alarm.count, alarm.alerts, alarm.acknowledged_at) == (counted.count, counted.alerts,
                                                                   counted.acknowledged_at), (
        "progress at the rate the alarm names already is neither counted nor alerted per report"
    )  # fmt: skip
    assert not _notifications(emitted)


def test_a_new_wrong_rate_alerts_again_and_a_rate_named_before_does_not(django_capture_on_commit_callbacks, emitted):
    capture = django_capture_on_commit_callbacks
    session = _under_way(capture, "RBM_NEW")
    send(capture, "RBM_NEW", "progress", _running(session, 20.0, 0.3), 2)
    first = _acknowledged(session, emitted)
    send(capture, "RBM_NEW", "progress", _running(session, 30.0, 0.6), 3)
    alarm = _active_mismatch(session)
    assert "1800 mL/h" in alarm.message and "1200 mL/h" in alarm.message, alarm.message
    assert alarm.acknowledged_at is None and alarm.alerts == first.alerts + 1 and _notifications(emitted), (
        "the pump went from 1,200 to 1,800 mL/h (order 120) and the acknowledged alarm does not alert again"
    )
    assert InfusionSession.objects.get(pk=session.pk).mismatch_flow_rate_ml_min == 30.0
    again = _acknowledged(session, emitted)
    send(capture, "RBM_NEW", "progress", _running(session, 20.0, 0.9), 4)
    alarm = _active_mismatch(session)
    assert alarm.acknowledged_at is not None and alarm.alerts == again.alerts and not _notifications(emitted), (
        "1,200 mL/h was named already: no news"
    )


def test_a_confirmation_echoing_the_rate_seen_running_is_no_news(django_capture_on_commit_callbacks, emitted):
    capture = django_capture_on_commit_callbacks
    session = _under_way(capture, "RBM_ECHO")
    send(capture, "RBM_ECHO", "progress", _running(session, 20.0, 0.3), 2)
    first = _acknowledged(session, emitted)
    send(capture, "RBM_ECHO", "infusion", _confirmation(session, {**VOLUME_OFF, "flowRateMlMin": 20.0,
                                                                    "plannedVolumeMl": 30}), 3)  # fmt: skip
    alarm = _active_mismatch(session)
    assert alarm.acknowledged_at is not None and alarm.alerts == first.alerts and not _notifications(emitted), (
        "the pump confirmed the rate it was seen running (1,200 mL/h): nothing the nurse has not read"
    )
    assert "1200 mL/h" in alarm.message and alarm.details.get("reportedFlowRate") == 20.0, (alarm.message,
                                                                                            alarm.details)  # fmt: skip


def test_news_on_a_mismatch_still_sounding_breaks_the_wards_silence(django_capture_on_commit_callbacks, emitted):
    """Not acknowledged yet, it sounds (nobody's acknowledgement on its way is refused, its escalation goes on, as
    `alarm_flood`'s): its text names the news, and a silence started over it is broken for it."""
    capture = django_capture_on_commit_callbacks
    session = _under_way(capture, "RBM_LOUD")
    send(capture, "RBM_LOUD", "progress", _running(session, 20.0, 0.3), 2)
    first = _active_mismatch(session)
    silence = ward_silence(ward=first.device.ward, user=make_user("rbm-charge"), seconds=120)
    send(capture, "RBM_LOUD", "infusion", _confirmation(session, VOLUME_OFF), 3)
    alarm = _active_mismatch(session)
    assert "plannedVolumeMl" in alarm.message and alarm.alerts == first.alerts, (alarm.message, alarm.alerts)
    assert WardSilence.objects.get(pk=silence.pk).end_reason == "broken", "the news must be heard through a silence"


def test_a_rate_seen_running_that_its_confirmation_reported_is_shown_but_no_news(
    django_capture_on_commit_callbacks, emitted
):
    capture = django_capture_on_commit_callbacks
    make_device("RBM_SAME", ward=make_ward("w-rbm-same"))
    session = confirmed_order("RBM_SAME", parameters={**VOLUME_OFF, "flowRateMlMin": 20.0, "plannedVolumeMl": 30},
                              bolus_enabled=False, bolus_volume_ml=0.0)  # fmt: skip
    first = _acknowledged(session, emitted)
    send(capture, "RBM_SAME", "progress", _running(session, 20.0, 0.3), 2)
    alarm = _active_mismatch(session)
    assert alarm.acknowledged_at is not None and alarm.alerts == first.alerts and not _notifications(emitted), (
        "the pump runs the rate it confirmed (1,200 mL/h, named already): nothing the nurse has not read"
    )
    assert "flowRateMlMin" in alarm.message and "1200 mL/h" in alarm.message, alarm.message
    assert InfusionSession.objects.get(pk=session.pk).mismatch_flow_rate_ml_min == 20.0, (
        "the rate seen running is not kept for the panels (progressMismatch)"
    )
    send(capture, "RBM_SAME", "progress", _running(session, 20.0, 0.6), 3)
    assert _active_mismatch(session).count == alarm.count, "not counted per progress at a rate seen already"


# A confirmation that leaves parameters out after a mismatch seen running (found after 846bf7f): `readback_record`
# kept the `mismatch` and returned, the confirmation cleared `unconfirmed_since` (so the evidence grace never raised
# `parameters_unverified`), and the parameter it left out was named in no alarm, only as "not reported" on the panel.
# The active `parameter_mismatch` names it as not reported (news: an acknowledged alarm alerts again); once that
# alarm was resolved, `parameters_unverified` names it. A confirmation with no `parameters` at all (the original
# firmware's) leaves them all out.

VOLUME_LEFT_OUT = {"flowRateMlMin": 2.0, "plannedTimeMin": 15, "bolusEnabled": False}
EVERY_PARAMETER = ["flowRateMlMin", "plannedVolumeMl", "plannedTimeMin", "bolusEnabled"]


def _seen_at_ten_times(capture, device_id: str) -> InfusionSession:
    """The order of 2 mL/min under way on evidence, then seen running 20 mL/min: `parameter_mismatch` active."""
    session = _under_way(capture, device_id)
    send(capture, device_id, "progress", _running(session, 20.0, 0.3), 2)
    assert _active_mismatch(session) is not None
    return session


def test_a_confirmation_leaving_the_volume_out_after_a_rate_seen_running_names_it_and_alerts_again(
    django_capture_on_commit_callbacks, emitted
):
    capture = django_capture_on_commit_callbacks
    session = _seen_at_ten_times(capture, "RBM_GAP")
    first = _acknowledged(session, emitted)
    send(capture, "RBM_GAP", "infusion", _confirmation(session, VOLUME_LEFT_OUT), 3)
    alarm = _active_mismatch(session)
    assert alarm.pk == first.pk and InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"
    assert "not reported: plannedVolumeMl" in alarm.message and alarm.details.get("missing") == ["plannedVolumeMl"], (
        f"the confirmation left the planned volume out and no alarm names it: {alarm.message!r}, {alarm.details}"
    )
    assert "1200 mL/h" in alarm.message and alarm.details.get("reportedFlowRate") == 20.0, (
        f"the rate seen running is no longer named: {alarm.message!r}, {alarm.details}"
    )
    assert alarm.details.get("reported") == VOLUME_LEFT_OUT, alarm.details
    assert alarm.acknowledged_at is None and alarm.alerts == first.alerts + 1 and _notifications(emitted), (
        f"the planned volume unreported is news to the nurse who acknowledged 1,200 mL/h, yet the alarm stays "
        f"acknowledged (alerts {alarm.alerts}, notifications {len(_notifications(emitted))})"
    )
    assert not Alarm.objects.filter(session=session, type="parameters_unverified").exists(), (
        "the active mismatch alarm names it: a second alarm for the same confirmation is noise"
    )


def test_a_confirmation_leaving_the_volume_out_names_it_on_a_mismatch_still_sounding(
    django_capture_on_commit_callbacks, emitted
):
    capture = django_capture_on_commit_callbacks
    session = _seen_at_ten_times(capture, "RBM_GAP_LOUD")
    first = _active_mismatch(session)
    emitted.clear()
    send(capture, "RBM_GAP_LOUD", "infusion", _confirmation(session, VOLUME_LEFT_OUT), 3)
    alarm = _active_mismatch(session)
    assert "not reported: plannedVolumeMl" in alarm.message and "1200 mL/h" in alarm.message, alarm.message
    assert (alarm.alerts, alarm.acknowledged_at) == (first.alerts, None) and not _notifications(emitted), (
        "an alarm still sounding is not re-alerted for news (its escalation goes on)"
    )


def test_a_confirmation_reporting_nothing_after_a_rate_seen_running_names_every_parameter(
    django_capture_on_commit_callbacks, emitted
):
    """The original firmware's confirmation carries no `parameters`: it leaves them all out."""
    capture = django_capture_on_commit_callbacks
    session = _seen_at_ten_times(capture, "RBM_NONE")
    first = _acknowledged(session, emitted)
    send(capture, "RBM_NONE", "infusion", {"infusionId": session.infusion_id, "confirmed": True}, 3)
    alarm = _active_mismatch(session)
    assert alarm.pk == first.pk and alarm.details.get("missing") == EVERY_PARAMETER, alarm.details
    assert "not reported: flowRateMlMin, plannedVolumeMl" in alarm.message and "1200 mL/h" in alarm.message, (
        alarm.message
    )
    assert alarm.acknowledged_at is None and alarm.alerts == first.alerts + 1 and _notifications(emitted), (
        "nothing the pump runs was read back but the rate seen off the order: news to the nurse who acknowledged it"
    )


def test_a_matching_confirmation_after_a_rate_seen_running_is_no_news(django_capture_on_commit_callbacks, emitted):
    """Control (passes before the fix too): a confirmation reporting every parameter as ordered names nothing new."""
    capture = django_capture_on_commit_callbacks
    session = _seen_at_ten_times(capture, "RBM_FULL")
    first = _acknowledged(session, emitted)
    send(capture, "RBM_FULL", "infusion", _confirmation(session, {**VOLUME_LEFT_OUT, "plannedVolumeMl": 30}), 3)
    alarm = _active_mismatch(session)
    assert (alarm.alerts, alarm.acknowledged_at, alarm.message) == (first.alerts, first.acknowledged_at,
                                                                     first.message), alarm.message  # fmt: skip
    assert not alarm.details.get("missing") and not _notifications(emitted), alarm.details


@pytest.mark.parametrize(("parameters", "missing"), [(VOLUME_LEFT_OUT, ["plannedVolumeMl"]), (None, EVERY_PARAMETER)],
                         ids=["volume-left-out", "no-parameters"])  # fmt: skip
def test_a_confirmation_leaving_parameters_out_after_the_mismatch_was_resolved_raises_unverified(
    django_capture_on_commit_callbacks, emitted, parameters, missing
):
    """A nurse resolved the mismatch (checked at the pump); the confirmation then reports the order's rate but not
    everything: nothing off the order to say, but what it left out is unverified (as for any order)."""
    capture = django_capture_on_commit_callbacks
    session = _seen_at_ten_times(capture, f"RBM_RES_{len(missing)}")
    first = _active_mismatch(session)
    alarm_resolve(alarm_id=first.pk, user=make_user(f"rbm-res-{len(missing)}", is_staff=True),
                  reason="checked_at_pump", note="set to 2 mL/min", alerts=first.alerts)  # fmt: skip
    body = {"infusionId": session.infusion_id, "confirmed": True}
    send(capture, session.device.device_id, "infusion", {**body, "parameters": parameters} if parameters else body, 3)
    unverified = Alarm.objects.filter(session=session, type="parameters_unverified", state="active").first()
    assert unverified is not None, (
        f"the confirmation left {missing} out after the mismatch was resolved, and no alarm says so "
        f"(alarms {list(Alarm.objects.filter(session=session).values_list('type', 'state'))})"
    )
    named = "not reported: plannedVolumeMl" in unverified.message  # none reported: the message says so
    assert unverified.details.get("fields") == missing and named == (parameters is not None), (
        unverified.message,
        unverified.details,
    )
    assert _active_mismatch(session) is None, "nothing off the order was reported since the resolve"
    assert InfusionSession.objects.get(pk=session.pk).read_back == "mismatch"
