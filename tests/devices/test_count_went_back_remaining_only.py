"""A pump that reports only `volumeRemainingMl` (both volumes are optional in the contract; the server counts its
delivered volume as the planned volume less what remains, `delivery._delivered`) and whose count goes back (review 29,
finding 4). The server alarmed it and kept the volume delivered in all, but the monitor (static/js/format.js
`deliveredInAllFacts`) and the station card (overview.js) summed the pump's own `deliveredVolumeMl`, which it never
sends: infused "—", "29.0 mL" remaining of an order 25 mL had gone into. The pages now show the server's count
(`deliveredInAllMl`). The payloads are the server's own, live (the change log) and on a fresh load (the snapshot,
the overview's rows); the monitor's figures are what the page's own functions make of them (node).
"""

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from devices.models import ChangeLogEntry, InfusionSession
from devices.views.browser_protocol import browser_protocol
from protocol import events
from protocol.payload_codec import payload_to_wire
from realtime.sio.snapshot import read_snapshot
from realtime.sio.ward_feed import pump_summaries
from tests.factories import make_device, make_ward
from tests.support.ingest import confirmed_order, ingest, report
from tests.support.node import page_script_result

pytestmark = pytest.mark.django_db
FORMAT_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "format.js"


def _remaining_only(session: InfusionSession, delivered: float, seq: int, *, counted: bool) -> dict:
    body = {"status": "running", "infusionId": session.infusion_id, "flowRate": 2.0, "bootId": "A", "seq": seq,
            "volumeRemainingMl": round(30.0 - delivered, 2)}  # fmt: skip
    return {**body, "deliveredVolumeMl": delivered} if counted else body


def _counted_again(capture, device_id: str, *, counted: bool = False) -> InfusionSession:
    """A 30 mL order at 2 mL/min: 24 mL reported a minute apart, then the count from 0 again, on to 1 mL."""
    make_device(device_id, ward=make_ward("remaining"), has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = timezone.now(), 1
    for delivered in [*(n * 2.0 for n in range(13)), 0.0, 1.0]:
        ingest([report(device_id, "progress", _remaining_only(session, delivered, seq, counted=counted), at=at)],
               capture)  # fmt: skip
        seq, at = seq + 1, at + timedelta(seconds=60)
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.delivered_in_all_ml == pytest.approx(25.0), "precondition: the server counts 24 + 1 mL in all"
    assert session.delivery_divergence["kind"] == "count_went_back", "precondition: the count going back is alarmed"
    return session


def _live(device_id: str, event: str) -> dict:
    """The newest `event` the screens were sent for the pump (its change-log row), as the wire has it."""
    return ChangeLogEntry.objects.filter(device_code=device_id, event=event).order_by("-id").first().body


def _snapshot(device_id: str, event: str) -> dict:
    return next(change.body for change in read_snapshot(device_id).changes if change.event == event)


def _monitor_volumes(progress: dict, session: dict) -> dict:
    """The monitor's Infused/Remaining: monitor.js's `{...volumeFacts(p), ...deliveredInAllFacts(p, s)}`."""
    protocol = json.dumps(json.dumps(browser_protocol()))  # what templates/base.html writes into every page
    script = f"""globalThis.document = {{ getElementById: () => ({{ textContent: {protocol} }}) }};
const f = await import({json.dumps(FORMAT_JS.as_uri())});
const p = {json.dumps(progress)}, s = {json.dumps(session)};
console.log(JSON.stringify({{ ...f.volumeFacts(p), ...f.deliveredInAllFacts(p, s) }}));"""
    return page_script_result(script)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
@pytest.mark.parametrize("read", [_live, _snapshot], ids=["live", "fresh load"])
def test_the_monitor_says_what_of_the_order_is_left_when_a_remaining_only_pump_counts_again(
    django_capture_on_commit_callbacks, read
):
    device_id = "REMAINING_ONLY_MONITOR"
    _counted_again(django_capture_on_commit_callbacks, device_id)
    progress, session = read(device_id, events.DEVICE_PROGRESS), read(device_id, events.DEVICE_SESSION)
    shown = _monitor_volumes(progress["progress"], session["session"])
    assert shown["infused"].startswith("25.0 mL in all") and shown["remaining"] == "5.0 mL of the order", (
        f"25 mL of the 30 mL order delivered in all, 5 mL left: the monitor says infused {shown['infused']!r}, "
        f"remaining {shown['remaining']!r} ({shown['percentText']})"
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_monitor_of_a_pump_that_counts_both_still_says_the_volume_in_all(django_capture_on_commit_callbacks):
    """The control: a pump sending `deliveredVolumeMl` too is shown as before (review 27's figures)."""
    device_id = "BOTH_COUNTED_MONITOR"
    _counted_again(django_capture_on_commit_callbacks, device_id, counted=True)
    shown = _monitor_volumes(_live(device_id, events.DEVICE_PROGRESS)["progress"],
                             _live(device_id, events.DEVICE_SESSION)["session"])  # fmt: skip
    assert shown["infused"] == "25.0 mL in all (24.0 mL before the pump's count went back, 1.0 mL counted since)", shown


def test_the_station_card_is_told_the_volume_in_all_of_a_remaining_only_pump(django_capture_on_commit_callbacks):
    """The overview's (and the station's) row: the server's count beside what was delivered before the count went
    back, so the card says "25.0 mL infused in all", not the pump's "29.0 mL left" and its own bar."""
    device_id = "REMAINING_ONLY_CARD"
    _counted_again(django_capture_on_commit_callbacks, device_id)
    _ward, body = pump_summaries(device_ids=[device_id])[device_id]
    row = payload_to_wire(body)
    assert (row["deliveredBeforeRunMl"], row.get("deliveredInAllMl")) == (24.0, 25.0), (
        f"the card must be told 25 mL delivered in all (24 before the count went back): {row}"
    )
