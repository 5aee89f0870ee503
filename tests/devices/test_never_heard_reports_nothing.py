"""Review 22, finding 6: a pump that has never been heard "reports idle" on the overview card and the monitor.

`Device.pump_state` defaults to `idle`, and both payloads send it as `pumpState` whatever the pump said: nothing, for
a pump registered and never heard (the demo's PUMP_0002 right after `make run`). The overview card reads
"– Never heard … Pump reports: idle" and the monitor's state badge "idle": a report the pump never made. A pump
actually infusing whose messages never arrive (wrong broker, an ACL, a typo in its id) is shown as reporting idle.
Offline, stale and zero must look different everywhere, in data and on screen (style.md, "Staleness is state"):
a pump never heard has no state to show: `pumpState` is null until it is first heard (the pages show "—",
`tests/browser/test_never_heard_reports_nothing.py`).
"""

import pytest

from devices import payloads
from devices.models import Device
from realtime.sio.ward_feed import pump_summaries
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db


def test_a_pump_never_heard_is_not_said_to_report_idle():
    make_device("R22_NEVER", ward=make_ward("r22"), bed="2")
    device = Device.objects.get(device_id="R22_NEVER")
    assert device.last_seen_at is None and device.connectivity() == "unknown", "precondition: never heard"
    status = payloads.status_body(device).status
    _, card = pump_summaries(["R22_NEVER"])["R22_NEVER"]
    reported_states = {"idle", "running", "paused"}  # what a pump reports; None or "unknown" say it reported none
    assert status.pumpState not in reported_states and card.pumpState not in reported_states, (
        f"a pump never heard is said to report pumpState {status.pumpState!r} (device:status) and "
        f"{card.pumpState!r} (ward:summary): the card reads 'Never heard … Pump reports: {card.pumpState}'"
    )
