"""Small rates keep their digits on every page (review 20): the template filter and format.js's `significant`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from devices.templatetags.units import significant

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
}
FORMAT_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "format.js"


@pytest.mark.parametrize(("value", "shown"), EXPECTED.items())
def test_the_template_shows_three_significant_figures(value, shown):
    assert significant(value) == shown, f"{value} mL/h is shown as {significant(value)}, not {shown}"


def test_nothing_is_shown_as_a_dash():
    assert significant(None) == "—"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_format_js_shows_what_the_template_shows():
    script = f"""globalThis.document = {{ getElementById: () => ({{ textContent: "{{}}" }}) }};  // protocol.js's data
const {{ significant }} = await import({json.dumps(FORMAT_JS.as_uri())});
console.log(JSON.stringify({json.dumps(list(EXPECTED))}.map((value) => significant(value))));"""
    run = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    shown = dict(zip(EXPECTED, json.loads(run.stdout.strip().splitlines()[-1]), strict=True))
    differ = {value: text for value, text in shown.items() if text != EXPECTED[value]}
    assert not differ, f"format.js shows {differ}, the template {[EXPECTED[v] for v in differ]}"
