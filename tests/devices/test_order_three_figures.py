"""Rate, volume and time all given must agree as an order derived from two of them does (review 33, finding 4).

The form and the services took three figures within max(0.05 mL, 1 %) of rate x time = volume: a wizard whose computed
time was put back by the browser's Back sent 121 mL/h, 30 mL and 15 min, and the pump was sent 2.016667 mL/min for 15
min (30.25 mL) against 30 mL. Three figures are now taken only when rate x time is the volume to within the rounding of
the figure derived from the other two (`protocol.limits.order_figures_agree`); the order placed is the three as given
(the rate rounded to 6 decimals, as always), so the pump is sent figures that agree, as the wizard reviewed them."""

import pytest

from devices.exceptions import PumpStreamError
from devices.forms import order_figures
from devices.models import Command, InfusionSession
from devices.services.sessions import infusion_start
from protocol.limits import order_figures_agree
from tests.devices.test_order_figures import FIGURES
from tests.devices.test_views_api import START_URL, WIZARD, post
from tests.factories import make_order, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(nurse):
    return signed_in(nurse)


@pytest.mark.parametrize(
    ("rate_ml_h", "volume_ml", "time_min", "volume_by_rate"),
    [("121", "30", "15", "30.25"), ("120", "30.2", "15", "30"), ("120", "30", "15.1", "30.2")],
)
def test_three_figures_that_disagree_are_refused_naming_them(client, device, rate_ml_h, volume_ml, time_min,
                                                              volume_by_rate):  # fmt: skip
    data = {**WIZARD, "rate_ml_h": rate_ml_h, "volume_ml": volume_ml, "time_min": time_min, "bolus_enabled": ""}
    response = post(client, START_URL, data)
    assert response.status_code == 400, f"{rate_ml_h} mL/h for {time_min} min with {volume_ml} mL was ordered"
    body = response.json()
    assert body["field"] == "time_min" and body["code"] == "invalid_order", body
    said = f"{rate_ml_h} mL/h for {time_min} min is {volume_by_rate} mL, not {volume_ml} mL"
    assert said in body["message"], body["message"]
    assert not InfusionSession.objects.exists() and not Command.objects.exists(), "a disagreeing order was placed"


@pytest.mark.parametrize(
    ("rate_ml_h", "volume_ml", "time_min", "order"),
    [
        ("120", "30", "15", [2.0, 30.0, 15.0]),
        ("7.5", "5.62", "45", [0.125, 5.62, 45.0]),  # the volume derived (5.625, a tie to the even digit) put back
        ("121", "30", "14.88", [2.016667, 30.0, 14.88]),  # the time derived from 121 mL/h and 30 mL put back
        ("0.10344", "1", "580", [0.001724, 1.0, 580.0]),  # the rate derived from 1 mL over 580 min put back
    ],
)
def test_three_figures_that_agree_place_the_order_as_given(client, device, rate_ml_h, volume_ml, time_min, order):
    data = {**WIZARD, "rate_ml_h": rate_ml_h, "volume_ml": volume_ml, "time_min": time_min, "bolus_enabled": ""}
    response = post(client, START_URL, data)
    assert response.status_code == 201, response.content
    placed = response.json()["session"]["order"]
    assert [placed["flowRateMlMin"], placed["plannedVolumeMl"], placed["plannedTimeMin"]] == order
    payload = Command.objects.get().payload
    assert [payload["flowRateMlMin"], payload["plannedVolumeMl"], payload["plannedTimeMin"]] == order, payload


def test_every_order_derived_from_two_figures_agrees():
    """The rule refuses no order the server derives itself (nor the wizard's: order_derivation.js, the same rule)."""
    disagree = []
    for rate_ml_h, volume_ml, time_min in FIGURES:
        rate, volume, minutes = order_figures(rate_ml_h=rate_ml_h, volume_ml=volume_ml, time_min=time_min)
        if not order_figures_agree(flow_rate_ml_min=rate, planned_volume_ml=volume, planned_time_min=minutes):
            disagree.append(f"{rate} mL/min, {volume} mL, {minutes} min")
    assert not disagree, f"orders the server derives that its own rule refuses: {disagree}"


def test_the_service_refuses_an_order_whose_figures_disagree(device):
    """`infusion_start` is the last guard for any caller: 2.016667 mL/min for 15 min is 30.25 mL, not 30 mL."""
    with pytest.raises(PumpStreamError) as refused:
        infusion_start(device_id=device.device_id, order=make_order(flow_rate_ml_min=2.016667))
    assert refused.value.code == "invalid_order" and refused.value.field == "planned_time_min"
    assert not InfusionSession.objects.exists() and not Command.objects.exists(), "a disagreeing order was queued"
