"""The overview's row of a pump infusing WITHOUT an order while an order waits for it says what the monitor says: the
pump infuses without an order (its own rate and volumes), and the order waits beside it.

Before, `ward_pump_body` counted a pending order as the pump's order: `unordered` false, no progress, the order's rate
as the pump's, so the row read "waiting for pump", Heparin, 120 mL/h and an empty bar, while the pump ran its own
infusion at 90 mL/h and the monitor said "Infusing WITHOUT an order". The server-rendered page and the `ward:summary`
feed build the row alike, so both said it.
"""

import json

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Device
from devices.services.sessions import infusion_start
from protocol.payload_codec import payload_to_wire
from realtime.sio.ward_feed import pump_summaries
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

OWN = {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 12.0, "volumeRemainingMl": 38.0,
       "timeRemainingMin": 25.3, "progressPercent": 24}  # fmt: skip


def busy_pump_with_an_order_waiting(capture) -> None:
    make_device("OVW_BUSY", ward=make_ward("ovw"), bed="3", last_seen_at=timezone.now())
    ingest([report("OVW_BUSY", "progress", {**OWN, "timestamp": 50000})], capture)  # its own infusion, no order
    infusion_start(device_id="OVW_BUSY", order=make_order(drug="Heparin", flow_rate_ml_min=2.0))  # 120 mL/h, pending
    ingest([report("OVW_BUSY", "progress", {**OWN, "timestamp": 51000}, 1)], capture)  # it goes on with its own


def test_the_feeds_row_shows_the_infusion_without_an_order_beside_the_waiting_order(django_capture_on_commit_callbacks):
    busy_pump_with_an_order_waiting(django_capture_on_commit_callbacks)
    _ward, body = pump_summaries(device_ids=["OVW_BUSY"])["OVW_BUSY"]
    row = payload_to_wire(body)
    shown = {key: row[key] for key in ("unordered", "pumpState", "sessionStatus", "drug", "rateMlH", "progressPercent")}
    assert shown == {"unordered": True, "pumpState": "running", "sessionStatus": "pending", "drug": "Heparin",
                     "rateMlH": 90.0, "progressPercent": 24}, (
        f"the pump infuses its own infusion at 90 mL/h while Heparin waits; the overview's row says {shown}"
    )  # fmt: skip
    assert row["deliveredVolumeMl"] == 12.0 and row["volumeRemainingMl"] == 38.0, "the pump's own volumes"


def test_the_server_rendered_row_says_the_same_as_the_feed(django_capture_on_commit_callbacks):
    busy_pump_with_an_order_waiting(django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(make_user("ovw-nurse", ward=make_ward("ovw")))
    response = client.get("/")
    html = response.content.decode()
    start = html.index('<script id="pumps-data" type="application/json">')
    start = html.index(">", start) + 1
    first_paint = json.loads(html[start : html.index("</script>", start)])[0]
    _ward, body = pump_summaries(device_ids=["OVW_BUSY"])["OVW_BUSY"]
    live = payload_to_wire(body)
    assert {key: first_paint[key] for key in live if key != "lastSeenAt"} == {
        key: value for key, value in live.items() if key != "lastSeenAt"
    }, "the page's first paint and the feed's row differ"
    card = html[html.index('data-device-id="OVW_BUSY"') :]
    assert "NO ORDER" in card and "running without an order · an order of Heparin waits for the pump" in card, (
        "the server-rendered card must say the pump infuses without an order, the order waiting beside it"
    )
    assert Device.objects.get(device_id="OVW_BUSY").pump_state == "running"
