"""A confirmation whose parameters could not be read, for an order already seen running off its rate: the active
`parameter_mismatch` says they could not be read, never that the pump did not report them.

The pump's `started` begins the order on its evidence, its progress at ten times the rate raises `parameter_mismatch`,
then its confirmation comes with `parameters` in a form the contract refuses (a rate as text): it is applied without
them (protocol/salvage.py). The alarm already active named them "not reported", which sends a nurse looking for a
pump that forgot to say what it runs, when it said something nobody could read (note of 2026-12-05, session 12).
"""

import pytest

from devices.models import Alarm
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order
from tests.support.ingest import send

pytestmark = pytest.mark.django_db


def test_parameters_unreadable_on_a_mismatch_are_named_unreadable(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("UNREAD_MISMATCH")
    session = infusion_start(device_id="UNREAD_MISMATCH",
                             order=make_order(bolus_enabled=False, bolus_volume_ml=0.0))  # fmt: skip
    send(capture, "UNREAD_MISMATCH", "status", {"status": "started", "infusionId": session.infusion_id}, 0)
    send(capture, "UNREAD_MISMATCH", "progress",
         {"status": "running", "flowRate": 20.0, "infusionId": session.infusion_id}, 1)  # fmt: skip
    alarm = Alarm.objects.get(session=session, type="parameter_mismatch", state="active")
    send(capture, "UNREAD_MISMATCH", "infusion", {"confirmed": True, "infusionId": session.infusion_id,
                                                  "parameters": {"flowRateMlMin": "fast"}}, 2)  # fmt: skip
    alarm.refresh_from_db()
    assert alarm.state == "active"
    assert "not reported" not in alarm.message and "could not be read" in alarm.message, (
        f"the pump reported its parameters in a form that could not be read, but its alarm says: {alarm.message!r}"
    )
