"""Small rates keep their digits on every page (review 20): the template filters and format.js's `significant` and
`exact` (the order's figures, review 28) show the same text, ties rounded alike (the browser rounds a value's shortest
decimal form half up: the template rounded 0.1235 by its binary value, "0.123", beside the live page's "0.124")."""

import json
import shutil
from pathlib import Path

import pytest

from devices.templatetags.units import exact, significant
from tests.support.node import page_script_result

EXPECTED = {
    0.14: "0.14",  # the wizard's 0.14 mL/h, not 0.1 (29 % low)
    0.13998: "0.14",  # 0.14 mL/h after its 6 decimals of mL/min
    0.1: "0.1",
    0.25: "0.25",  # not 0.3 (20 % high)
    0.125: "0.125",
    0.047: "0.047",
    7.5: "7.5",
    7.55: "7.55",
    60: "60.0",
    114: "114.0",
    1200: "1,200.0",
    0: "0.0",
    0.1235: "0.124",  # a tie in its shortest form, as the browser rounds it
}
EXACT = {
    0.125: "0.125",
    0.10344: "0.103",  # 1 mL over 580 min, as the server derives it (0.001724 mL/min)
    12.34002: "12.34",  # 12.34 mL/h after its 6 decimals of mL/min: the monitor's "Ordered 12.34 mL/h"
    2.125: "2.125",
    250: "250.0",
    1200: "1,200.0",
    1.0005: "1.001",
}
FORMAT_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "format.js"


@pytest.mark.parametrize(("value", "shown"), EXPECTED.items())
def test_the_template_shows_three_significant_figures(value, shown):
    assert significant(value) == shown, f"{value} mL/h is shown as {significant(value)}, not {shown}"


def test_nothing_is_shown_as_a_dash():
    assert significant(None) == "—"


@pytest.mark.parametrize(("value", "shown"), EXACT.items())
def test_the_template_shows_an_order_as_typed(value, shown):
    assert exact(value) == shown, f"an order of {value} is shown as {exact(value)}, not {shown}"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
@pytest.mark.parametrize(("name", "expected"), [("significant", EXPECTED), ("exact", EXACT)])
def test_format_js_shows_what_the_template_shows(name, expected):
    script = f"""globalThis.document = {{ getElementById: () => ({{ textContent: "{{}}" }}) }};  // protocol.js's data
const {{ {name} }} = await import({json.dumps(FORMAT_JS.as_uri())});
console.log(JSON.stringify({json.dumps(list(expected))}.map((value) => {name}(value))));"""
    shown = dict(zip(expected, page_script_result(script), strict=True))
    differ = {value: text for value, text in shown.items() if text != expected[value]}
    assert not differ, f"format.js's {name} shows {differ}, the template {[expected[v] for v in differ]}"
