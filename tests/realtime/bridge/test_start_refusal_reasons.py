"""Today's firmware refuses a START with `confirmed: false` and a `reason` (docs/simulator.md): the refusal is told as
what it is, the reason kept (review 33, finding 2: a busy pump's refusal was told "someone at the pump pressed Reject",
its reason dropped). The answer goes through the bridge's real batch ingest."""

import pytest

from devices.models import Command
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.ingest import ingest, report, start_sent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("answer", "reason"),
    [({"reason": "pump_busy"}, "refused by the pump: it is busy with an infusion of its own (pump_busy)"),
     ({"reason": "rejected_at_pump"}, "rejected at the pump"),
     ({"reason": "battery_low"}, "refused by the pump, its reason: battery_low"),
     ({}, "refused by the pump, no reason given")],
)  # fmt: skip
def test_a_refusal_keeps_the_reason_the_pump_gave(django_capture_on_commit_callbacks, answer, reason):
    """Today's firmware refuses with `confirmed: false` and a reason (review 33, finding 2): busy is not a person's
    Reject, and a reason the contract does not name is kept as given, none made up."""
    make_device("REFUSAL", has_presence=True)
    session = infusion_start(device_id="REFUSAL", order=make_order())
    start_sent(session)
    body = {"infusionId": session.infusion_id, "confirmed": False, "bootId": "b1", "seq": 1, **answer}
    ingest([report("REFUSAL", "infusion", body)], django_capture_on_commit_callbacks)
    session.refresh_from_db()
    assert (session.status, session.status_reason) == (SessionStatus.REJECTED, reason)
    assert session.confirmation.get("reason") == answer.get("reason"), "the pump's answer was not kept whole"
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    assert start.state == CommandState.DONE, f"the START the pump answered ended {start.state}"
