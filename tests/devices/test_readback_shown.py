"""What a `device:session` tells a read-back panel it may show as the pump's (the screen must never lie).

After a restart the resumed order reads `unverified` (fa6304c), but its session still carried the confirmation from
before the restart in `reportedParameters`, with nothing to tell it from one of this run: the panels showed it under
"Pump reports". And a mismatch found from the pump's progress carried no rate at all: the panels showed an old
confirmation (or "not reported") beside MISMATCH, never the running rate that raised `parameter_mismatch`.
`unconfirmedSince` and `progressMismatch` say both (added fields: a body without them still reads).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, InfusionSession
from devices.services.sessions import infusion_start
from protocol.payload_codec import payload_from_wire, payload_to_wire
from protocol.payloads import SessionEvent
from tests.devices.test_unverified_after_a_grace import AS_ORDERED, resumed_after_a_restart
from tests.factories import make_device, make_order
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db


def shown(session: InfusionSession) -> dict:
    """The session as a page receives it (`device:session`'s inner object, on the wire)."""
    return payload_to_wire(payloads.session_body(InfusionSession.objects.get(pk=session.pk)))["session"]


def test_a_confirmation_from_before_a_restart_is_told_apart_from_one_of_this_run(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session, resumed_at = resumed_after_a_restart(capture, "RBS_RESUME", AS_ORDERED)
    body = shown(session)
    assert body["readBack"] == "unverified"
    assert body["reportedParameters"] == AS_ORDERED  # kept, as before: what the pump confirmed (before the restart)
    assert body["unconfirmedSince"] == resumed_at.isoformat(), (
        f"a resumed order's session does not say its parameters were reported before the restart, not for the run "
        f"under way: {body}"
    )
    confirmation = {"infusionId": session.infusion_id, "confirmed": True, "parameters": AS_ORDERED, "bootId": "boot-2"}
    ingest([report("RBS_RESUME", "infusion", confirmation, at=resumed_at + timedelta(seconds=1))], capture)
    body = shown(session)
    assert (body["readBack"], body["unconfirmedSince"]) == ("match", None), "confirmed again: reported for this run"


def test_a_mismatch_found_from_progress_carries_the_rate_that_raised_it(django_capture_on_commit_callbacks):
    """Seen at 20 mL/min (order 2) while unverified; its confirmation then echoes the order: the read-back stays a
    mismatch (review 12), and the rate the panel shows is still the one seen running, with when it was received."""
    capture, now = django_capture_on_commit_callbacks, timezone.now()
    make_device("RBS_SEEN")
    session = infusion_start(device_id="RBS_SEEN", order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))
    infusion_id = session.infusion_id
    ingest([report("RBS_SEEN", "status", {"status": "started", "infusionId": infusion_id}, at=now)], capture)
    assert shown(session)["progressMismatch"] is None
    seen_at = now + timedelta(seconds=1)
    running = {"status": "running", "flowRate": 20.0, "deliveredVolumeMl": 0.3, "infusionId": infusion_id}
    ingest([report("RBS_SEEN", "progress", running, at=seen_at)], capture)
    alarm = Alarm.objects.get(session=session, type="parameter_mismatch", state="active")
    expected = {"flowRateMlMin": alarm.details["reportedFlowRate"], "receivedAt": seen_at.isoformat(),
                "matchedSince": None}  # fmt: skip
    assert shown(session)["progressMismatch"] == expected
    assert expected == {"flowRateMlMin": 20.0, "receivedAt": seen_at.isoformat(), "matchedSince": None}
    confirmation = {"infusionId": infusion_id, "confirmed": True, "parameters": AS_ORDERED}
    ingest([report("RBS_SEEN", "infusion", confirmation, at=now + timedelta(seconds=2))], capture)
    body = shown(session)
    assert (body["readBack"], body["progressMismatch"]) == ("mismatch", expected), (
        f"a confirmation echoing the order hid the rate the pump was seen running at: {body}"
    )


def test_a_rate_seen_before_a_restart_is_not_shown_for_the_resumed_run(django_capture_on_commit_callbacks):
    """The run before the restart was seen at 20 mL/min; resumed, the pump runs its order's rate: the session no
    longer says it runs 20 (the read-back is `unverified` again), and a new wrong rate is the one shown."""
    capture = django_capture_on_commit_callbacks
    session, resumed_at = resumed_after_a_restart(capture, "RBS_AGAIN", None)
    progress = {"status": "running", "deliveredVolumeMl": 1.5, "infusionId": session.infusion_id, "bootId": "boot-2"}
    ingest([report("RBS_AGAIN", "progress", {**progress, "flowRate": 20.0}, at=resumed_at + timedelta(seconds=1))],
           capture)  # fmt: skip
    assert shown(session)["progressMismatch"]["flowRateMlMin"] == 20.0
    ingest([report("RBS_AGAIN", "status", {"status": "online", "bootId": "boot-3"},
                   at=resumed_at + timedelta(seconds=2))], capture)  # fmt: skip
    again_at = resumed_at + timedelta(seconds=3)
    ingest([report("RBS_AGAIN", "progress", {**progress, "flowRate": 2.0, "bootId": "boot-3"}, at=again_at)], capture)
    body = shown(session)
    assert (body["status"], body["readBack"], body["progressMismatch"]) == ("running", "unverified", None), body
    ingest([report("RBS_AGAIN", "progress", {**progress, "flowRate": 6.0, "bootId": "boot-3"},
                   at=again_at + timedelta(seconds=1))], capture)  # fmt: skip
    assert shown(session)["progressMismatch"]["flowRateMlMin"] == 6.0


def test_a_session_body_without_the_added_fields_still_reads():
    """Bodies recorded before the fields were added (the change log keeps them) read back, the fields unset."""
    old = {"session": {"infusionId": "inf_old", "status": "running", "order": {
        "flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolus": {"enabled": False, "volumeMl": 0},
        "drug": "Saline"}, "reason": None, "createdAt": None, "deliveredAt": None, "confirmedAt": None, "endedAt": None,
        "reportedParameters": AS_ORDERED, "readBack": "match", "patient": None, "patientBed": None,
        "runningEvidence": "confirmation"}}  # fmt: skip
    session = payload_from_wire(SessionEvent, old).session
    assert (session.unconfirmedSince, session.progressMismatch) == (None, None)
    assert payload_to_wire(payload_from_wire(SessionEvent, old)) == old  # nothing added to an old body


def test_the_migration_keeps_a_mismatch_seen_running_for_the_panels():
    """Sessions on their pump read a mismatch when 0023 runs: one whose latest `parameter_mismatch` came from its
    progress gets that rate and moment; one from a confirmation, and an ended one, get none."""
    from importlib import import_module

    from django.apps import apps

    stamp = import_module("devices.migrations.0023_session_progress_mismatch").stamp_progress_mismatch
    at, rows = timezone.now() - timedelta(minutes=3), {}
    seen, confirmed = {"reportedFlowRate": 20.0, "fields": ["flowRate"]}, {"reported": AS_ORDERED, "fields": ["rate"]}
    for name, status, details in [("seen", "running", seen), ("confirmed", "paused", confirmed),
                                  ("ended", "stopped", seen)]:  # fmt: skip
        make_device(f"MIG23_{name}")
        session = infusion_start(device_id=f"MIG23_{name}", order=make_order())
        InfusionSession.objects.filter(pk=session.pk).update(status=status, read_back="mismatch")
        Alarm.objects.create(device=session.device, session=session, type="parameter_mismatch", priority="high",
                             source="server", details=details, raised_at=at, last_raised_at=at)  # fmt: skip
        rows[name] = session.pk
    stamp(apps, None)
    stamped = {name: InfusionSession.objects.values_list("mismatch_flow_rate_ml_min", "mismatch_seen_at").get(pk=pk)
               for name, pk in rows.items()}  # fmt: skip
    assert stamped == {"seen": (20.0, at), "confirmed": (None, None), "ended": (None, None)}, stamped
