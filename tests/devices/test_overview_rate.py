"""The ward overview's `rateMlH` is only ever the rate the pump reported; the order's is `orderedRateMlH` (review 19).

`ward_payloads.ward_pump_body` fell back to the order's rate whenever the session had no progress with a `flowRate`, and
the row said nothing of it: the card showed "Rate 120.0 mL/h" under "Pump reports running" for an order before its
first progress, for one running on the pump's word alone (read-back unverified: nobody knows the rate the pump runs),
and for as long as the pump's progress left `flowRate` out, where the monitor showed "—".
"""

import json

import pytest
from django.test import Client
from django.utils import timezone

from devices.services.sessions import infusion_start
from protocol.payload_codec import payload_to_wire
from realtime.sio.ward_feed import pump_summaries
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.ingest import confirmed_order, send

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


def row_of(device_id: str) -> dict:
    _ward, body = pump_summaries(device_ids=[device_id])[device_id]
    return payload_to_wire(body)


def rate_claims_to_be_the_pumps(row: dict) -> bool:
    """The row gives a rate the pump never reported (the order's 120 mL/h as `rateMlH`), or loses the order's."""
    return row["rateMlH"] is not None or row["orderedRateMlH"] != 120.0


def test_a_running_order_before_its_first_progress_is_not_shown_at_the_pumps_rate(django_capture_on_commit_callbacks):
    make_device("RATE_NEW", ward=make_ward("rate"), has_presence=True, last_seen_at=timezone.now())
    confirmed_order("RATE_NEW", parameters=READ_BACK)  # 120 mL/h ordered and confirmed; no progress yet
    row = row_of("RATE_NEW")
    assert not rate_claims_to_be_the_pumps(row), (
        f"no progress yet: the overview shows {row['sessionStatus']} at {row['rateMlH']} mL/h as the pump's rate, "
        f"which is the order's (the monitor shows —)"
    )


def test_an_order_running_on_evidence_alone_is_not_shown_at_the_orders_rate(django_capture_on_commit_callbacks):
    """A `running` status naming the order made it run, read-back unverified: the pump's rate is unknown."""
    capture = django_capture_on_commit_callbacks
    make_device("RATE_EVID", ward=make_ward("rate"), has_presence=True, last_seen_at=timezone.now())
    session = infusion_start(device_id="RATE_EVID", order=make_order(flow_rate_ml_min=2.0))
    send(capture, "RATE_EVID", "status", {"status": "running", "infusionId": session.infusion_id})
    row = row_of("RATE_EVID")
    assert row["sessionStatus"] == "running", row
    assert not rate_claims_to_be_the_pumps(row), (
        f"running on the pump's word alone (read-back unverified): the overview shows {row['rateMlH']} mL/h as "
        "the pump's rate"
    )


def test_progress_without_a_flow_rate_is_not_shown_at_the_orders_rate(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("RATE_NOFLOW", ward=make_ward("rate"), has_presence=True, last_seen_at=timezone.now())
    session = confirmed_order("RATE_NOFLOW", parameters=READ_BACK)
    send(capture, "RATE_NOFLOW", "progress", {"status": "running", "deliveredVolumeMl": 3.0, "volumeRemainingMl": 27.0,
                                              "timeRemainingMin": 13.5, "infusionId": session.infusion_id})  # fmt: skip
    row = row_of("RATE_NOFLOW")
    assert row["progressPercent"] is None and row["deliveredVolumeMl"] == 3.0, row
    assert not rate_claims_to_be_the_pumps(row), (
        f"the pump reports progress without a rate: the overview shows {row['rateMlH']} mL/h beside its volumes, "
        "as if the pump reported it"
    )


def test_the_server_rendered_card_does_not_show_the_orders_rate_as_the_pumps(django_capture_on_commit_callbacks):
    make_device("RATE_CARD", ward=make_ward("rate"), has_presence=True, last_seen_at=timezone.now())
    confirmed_order("RATE_CARD", parameters=READ_BACK)
    client = Client()
    client.force_login(make_user("rate-nurse", ward=make_ward("rate")))
    html = client.get("/").content.decode()
    start = html.index('<script id="pumps-data" type="application/json">')
    first_paint = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])[0]
    assert not rate_claims_to_be_the_pumps(first_paint), (
        f"the card's first paint says 'Pump reports {first_paint['pumpState']}' and 'Rate {first_paint['rateMlH']} "
        "mL/h' before the pump reported any rate"
    )


def test_the_pumps_own_rate_is_its_reported_one_beside_the_orders(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("RATE_OWN", ward=make_ward("rate"), has_presence=True, last_seen_at=timezone.now())
    session = confirmed_order("RATE_OWN", parameters=READ_BACK)
    send(capture, "RATE_OWN", "progress", {"status": "running", "flowRate": 1.9, "infusionId": session.infusion_id})
    row = row_of("RATE_OWN")
    assert (row["rateMlH"], row["orderedRateMlH"]) == (114.0, 120.0)


def test_the_rates_keep_every_digit_the_monitor_shows(django_capture_on_commit_callbacks):
    """Review 28 (finding 2): `rateMlH` and `orderedRateMlH` were rounded to two decimals of mL/h, so a pump at
    0.125 mL/h read "0.12 mL/h" on the overview and the station beside the monitor's "0.125". They are now the very
    products the monitor computes (format.js `mlMinToMlH`): the pages round them alike."""
    capture = django_capture_on_commit_callbacks
    rate_ml_min = round(0.125 / 60, 6)  # 0.002083 mL/min: 0.12498 mL/h
    make_device("RATE_SMALL", ward=make_ward("rate"), has_presence=True, last_seen_at=timezone.now())
    session = confirmed_order("RATE_SMALL", flow_rate_ml_min=rate_ml_min, planned_volume_ml=2.0,
                              planned_time_min=round(2.0 / rate_ml_min, 2), bolus_enabled=False)  # fmt: skip
    progress = {"status": "running", "flowRate": 0.0020831, "infusionId": session.infusion_id}  # the pump's measure
    send(capture, "RATE_SMALL", "progress", progress)
    row = row_of("RATE_SMALL")
    expected = {"rateMlH": 0.0020831 * 60, "orderedRateMlH": rate_ml_min * 60}  # as the monitor multiplies them
    shown = {name: row[name] for name in expected}
    assert shown == expected, f"the monitor shows the rates from {expected} mL/h, the overview from {shown}"
