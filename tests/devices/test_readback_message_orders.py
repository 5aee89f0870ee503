"""Every order of a pump's messages around a wrong running rate ends in a mismatch (or, once the
order ended, an unordered-infusion alarm), never "parameters match" beside the wrong rate.

Review 19 tried them against main at 0a0b945 (all held); kept as regression tests: confirmation
before or after the progress, in one batch or two, a copy of the confirmation, a second matching confirmation, `seq`
out of order, a pause at the pump then running at the wrong rate, the original firmware's own order of messages, and a
Stop then progress.
"""

import pytest

from devices.models import Alarm, InfusionSession
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

ORDER = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
         "bolusVolumeMl": 5.0}  # fmt: skip
WRONG = 20.0  # 1,200 mL/h for an order of 120


def confirmation(infusion_id: str, seq: int | None = None) -> dict:
    keyed = {"seq": seq, "bootId": "b"} if seq is not None else {}
    return {"infusionId": infusion_id, "confirmed": True, "parameters": ORDER, **keyed}


def progress(infusion_id: str | None, rate: float, seq: int | None = None, status: str = "running") -> dict:
    keyed = {"seq": seq, "bootId": "b"} if seq is not None else {}
    named = {"infusionId": infusion_id} if infusion_id else {}
    return {"status": status, "flowRate": rate, "deliveredVolumeMl": 6.0, **named, **keyed}


def verdict(session: InfusionSession) -> tuple[str, str, list[str]]:
    session.refresh_from_db()
    alarms = list(Alarm.objects.filter(device=session.device, state="active").values_list("type", flat=True))
    return session.status, session.read_back, alarms


def ordered(device_id: str) -> InfusionSession:
    make_device(device_id, has_presence=True)
    return infusion_start(device_id=device_id, order=make_order())


SCENARIOS = {
    "confirmation-then-progress": lambda i: [[("infusion", confirmation(i))], [("progress", progress(i, WRONG))]],
    "confirmation-then-progress-one-batch": lambda i: [[("infusion", confirmation(i)),
                                                        ("progress", progress(i, WRONG))]],
    "progress-then-confirmation": lambda i: [[("progress", progress(i, WRONG))], [("infusion", confirmation(i))]],
    "progress-then-confirmation-one-batch": lambda i: [[("progress", progress(i, WRONG)),
                                                        ("infusion", confirmation(i))]],
    "seq-out-of-order": lambda i: [[("progress", progress(i, WRONG, seq=6))], [("infusion", confirmation(i, seq=5))]],
    "copy-of-the-confirmation": lambda i: [[("infusion", confirmation(i, seq=5))], [("progress", progress(i, WRONG))],
                                           [("infusion", confirmation(i, seq=5))]],
    "second-matching-confirmation": lambda i: [[("infusion", confirmation(i, seq=5))],
                                               [("progress", progress(i, WRONG))],
                                               [("infusion", confirmation(i, seq=9))]],
    "paused-at-the-pump-then-running": lambda i: [[("infusion", confirmation(i))], [("progress", progress(i, 2.0))],
                                                  [("actions", {"action": "MANUAL_PAUSE", "infusionId": i})],
                                                  [("progress", progress(i, WRONG))]],
}  # fmt: skip


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_wrong_running_rate_is_a_mismatch_in_any_order(django_capture_on_commit_callbacks, scenario):
    session = ordered("RB_ORDER")
    for step, batch in enumerate(SCENARIOS[scenario](session.infusion_id)):
        ingest([report("RB_ORDER", kind, body, step) for kind, body in batch], django_capture_on_commit_callbacks)
    status, read_back, alarms = verdict(session)
    assert status == "running" and read_back == "mismatch" and "parameter_mismatch" in alarms, (
        f"{scenario}: the pump runs 1200 mL/h for an order of 120: {status}, read-back {read_back}, alarms {alarms}"
    )


def test_the_original_firmwares_order_of_messages_with_a_wrong_rate_is_a_mismatch(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = ordered("RB_LEGACY")
    steps = [("status", {"status": "received_start_command", "currentInfusion": {"rate": 2.0}}),
             ("bolus", {"action": "BOLUS_COMPLETED", "infusionId": session.infusion_id, "bolusDelivered": 5.0}),
             ("infusion", {"infusionId": session.infusion_id, "confirmed": True, "parameters": ORDER}),
             ("status", {"status": "started"}), ("progress", progress(None, WRONG))]  # fmt: skip
    for step, (kind, body) in enumerate(steps):
        ingest([report("RB_LEGACY", kind, body, step * 0.1)], capture)
    status, read_back, alarms = verdict(session)
    assert (status, read_back) == ("running", "mismatch") and "parameter_mismatch" in alarms, (
        f"the original firmware's own order of messages at 1200 mL/h: {status}, read-back {read_back}, alarms {alarms}"
    )


def test_progress_after_the_pump_reported_stopped_is_no_match(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = ordered("RB_STOP")
    ingest([report("RB_STOP", "infusion", confirmation(session.infusion_id))], capture)
    ingest([report("RB_STOP", "status", {"status": "stopped", "infusionId": session.infusion_id}, 1)], capture)
    ingest([report("RB_STOP", "progress", progress(session.infusion_id, WRONG), 2)], capture)
    status, read_back, alarms = verdict(session)
    assert status == "stopped" and {"infusing_without_order", "infusing_after_stop"} & set(alarms), (
        f"the pump runs at 1200 mL/h after it reported the order stopped: {status}, {read_back}, alarms {alarms}"
    )
