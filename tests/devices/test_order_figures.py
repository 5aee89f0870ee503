"""The wizard's review derives the order by the server's own rule (review 28, finding 1): the rate in mL/min rounded to
6 decimals first, then the volume or time left out from it, rounded as Python's `round` rounds (a tie to the even
digit). The wizard filled in its own figure rounded to two decimals of mL/h and showed it: 1 mL over 580 min reviewed as
0.1 mL/h while 0.103 mL/h was ordered, and 7.5 mL/h for 45 min as 5.63 mL (JavaScript rounding 5.625 up) while 5.62 mL
was. Here order_derivation.js's `derivedOrder` and forms.py's `order_figures` meet every pair of some usual figures."""

import itertools
import json
import shutil
from pathlib import Path

import pytest

from devices.forms import order_figures
from protocol.limits import LIMIT_TOLERANCE, RATE_DECIMALS, TIME_DECIMALS, VOLUME_DECIMALS, order_figures_agree
from tests.support.node import page_script_result

ORDER_DERIVATION_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "order_derivation.js"
RATES_ML_H = [0.1, 0.103, 0.125, 0.14, 0.46875, 0.7, 1.5, 4.5, 7.5, 12.34, 22.5, 100, 120, 333.3, 999]
VOLUMES_ML = [0.5, 1, 2.125, 5, 10, 30, 50, 100, 250, 1000]
TIMES_MIN = [1, 7, 45, 60, 90, 580, 1440]
# any two of rate, volume and time, the third left out (None), as the wizard sends them
FIGURES = (
    [(rate, volume, None) for rate, volume in itertools.product(RATES_ML_H, VOLUMES_ML)]
    + [(rate, None, minutes) for rate, minutes in itertools.product(RATES_ML_H, TIMES_MIN)]
    + [(None, volume, minutes) for volume, minutes in itertools.product(VOLUMES_ML, TIMES_MIN)]
)
DECIMALS = {"rateMlMin": RATE_DECIMALS, "volumeMl": VOLUME_DECIMALS, "timeMin": TIME_DECIMALS}


def server_orders() -> list[list[float]]:
    return [list(order_figures(rate_ml_h=rate, volume_ml=volume, time_min=time)) for rate, volume, time in FIGURES]


def page_orders() -> list[list[float]]:
    script = f"""const {{ derivedOrder }} = await import({json.dumps(ORDER_DERIVATION_JS.as_uri())});
const figures = {json.dumps(FIGURES)};
const orders = figures.map(([rateMlH, volumeMl, timeMin]) => derivedOrder({{ rateMlH, volumeMl, timeMin }},
  {json.dumps(DECIMALS)}));
console.log(JSON.stringify(orders.map((o) => [o.flowRateMlMin, o.plannedVolumeMl, o.plannedTimeMin])));"""
    return page_script_result(script)


def test_the_server_orders_what_the_review_showed_in_the_two_found():
    assert order_figures(rate_ml_h=None, volume_ml=1, time_min=580)[0] * 60 == pytest.approx(0.10344)
    assert order_figures(rate_ml_h=7.5, volume_ml=None, time_min=45)[1] == 5.62  # 5.625: a tie, to the even digit


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_wizard_derives_the_order_the_server_places():
    differ = {
        f"rate {rate} mL/h, volume {volume} mL, time {minutes} min": {"server": server, "wizard": page}
        for (rate, volume, minutes), server, page in zip(FIGURES, server_orders(), page_orders(), strict=True)
        if server != page
    }
    assert not differ, f"the wizard reviews {len(differ)} orders other than the server places: {differ}"


# three figures as a restored or hand-typed form sends them: some derived orders, some off by a little (review 33, F4)
THREE_FIGURES = [
    (rate, volume, minutes)
    for rate, volume, minutes in itertools.product([0.1, 7.5, 120, 121, 999], [1, 5.62, 30, 30.25, 1000], [1, 15, 45])
] + [(120, 30, 15.01), (120, 30.01, 15), (121, 30, 14.88), (0.10344, 1, 580), (0.103, 1, 580), (999, 249.75, 15)]


def agreements_on_the_page(orders: list[list[float]]) -> list[bool]:
    limits = {"decimals": DECIMALS, "tolerance": LIMIT_TOLERANCE}
    script = f"""const {{ figuresAgree }} = await import({json.dumps(ORDER_DERIVATION_JS.as_uri())});
const orders = {json.dumps(orders)};
console.log(JSON.stringify(orders.map(([flowRateMlMin, plannedVolumeMl, plannedTimeMin]) =>
  figuresAgree({{ flowRateMlMin, plannedVolumeMl, plannedTimeMin }}, {json.dumps(limits)}))));"""
    return page_script_result(script)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_wizard_takes_three_figures_as_the_server_does():
    orders = [list(order_figures(rate_ml_h=rate, volume_ml=volume, time_min=t)) for rate, volume, t in THREE_FIGURES]
    server = [order_figures_agree(flow_rate_ml_min=r, planned_volume_ml=v, planned_time_min=t) for r, v, t in orders]
    differ = [order for order, on_server, on_page in zip(orders, server, agreements_on_the_page(orders), strict=True)
              if on_server != on_page]  # fmt: skip
    assert not differ, f"orders (mL/min, mL, min) the wizard and the server judge differently: {differ}"
    assert any(server) and not all(server), "the figures tried test nothing: all agree, or none"
