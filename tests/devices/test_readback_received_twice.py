"""Review 23, finding 5: a second `received_start_command` telling the order's values erased that the pump
first held others.

The read-back of what a pump says it received with an order (`readback_received_record`) keeps only the latest values
told. A pump that said it received 300 mL of a 30 mL order (a high `parameter_mismatch`: "the order that runs is a
mismatch whatever it confirms", docs/clinical-rules.md) and then tells the order's 30 mL (its START redelivered, a
second receipt) has its first report forgotten: its matching confirmation then reads `match`, and the panels show a
verified order beside the still active mismatch alarm.
"""

import pytest

from devices.models import Alarm, InfusionSession
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order
from tests.support.ingest import send

pytestmark = pytest.mark.django_db

AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": True,
              "bolusVolumeMl": 5}  # fmt: skip


def test_an_order_received_off_then_as_ordered_does_not_read_back_as_a_match(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("R23_RECV")
    session = infusion_start(device_id="R23_RECV", order=make_order())
    received = {"status": "received_start_command", "infusionId": session.infusion_id}
    send(capture, "R23_RECV", "status", {**received, "currentInfusion": {**AS_ORDERED, "plannedVolumeMl": 300}})
    assert Alarm.objects.filter(session=session, type="parameter_mismatch", state="active").exists(), "precondition"
    send(capture, "R23_RECV", "status", {**received, "currentInfusion": AS_ORDERED, "seq": 2, "bootId": "b"}, 1)
    send(capture, "R23_RECV", "infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                           "parameters": AS_ORDERED}, 2)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    active = list(Alarm.objects.filter(session=session, state="active").values_list("type", flat=True))
    assert session.read_back == "mismatch", (
        f"the pump said it received 300 mL of a 30 mL order, then 30 mL: the order runs with read-back "
        f"{session.read_back!r} (received now {session.received_parameters}) beside active alarms {active}"
    )
