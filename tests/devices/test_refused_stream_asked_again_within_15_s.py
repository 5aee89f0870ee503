"""A pump or ward feed refused again and again is asked again within 15 s, each delay still spread (`live.js later`).

The page's comments, the commit and docs/protocol.md say a stream refused while the database was away is asked again
within 15 s of its return, each delay spread by a fifth either way so that a ward's screens refused together do not all
ask again in the same instant. The spread was applied after the 15 s cap: up to 18 s (review 39). Here node runs
live.js's `later` with `Math.random` at its extremes and records each delay it sets.
"""

import json
import shutil
from pathlib import Path

import pytest

from tests.support.node import page_script_result

LIVE_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "live.js"
PROTOCOL = {"events": {"deviceEvents": [], "wardEvents": []}, "activeSessionStatuses": [], "onPumpSessionStatuses": [],
            "unsettledCommandStates": [], "infusingPumpStates": []}  # fmt: skip
REFUSALS = 8
HARNESS = """
globalThis.document = { getElementById: (id) => id === "protocol-data" ? { textContent: PROTOCOL } : null };
globalThis.window = globalThis;
const { LiveConnection } = await import(LIVE_JS);
const delays = {};
for (const [name, random] of [["soonest", 0], ["latest", 1 - Number.EPSILON]]) {
  Math.random = () => random;
  delays[name] = [];
  globalThis.setTimeout = (again, ms) => delays[name].push(ms);
  const page = { refusals: new Map() };
  for (let n = 0; n < REFUSALS; n += 1) LiveConnection.prototype.later.call(page, "PUMP_0001", () => {});
}
console.log(JSON.stringify(delays));
"""


def delays_set_by_the_page() -> dict[str, list[float]]:
    """Milliseconds before each of REFUSALS asks in a row, the spread at its least and at its most."""
    values = {"LIVE_JS": json.dumps(LIVE_JS.as_uri()), "PROTOCOL": json.dumps(json.dumps(PROTOCOL)),
              "REFUSALS": str(REFUSALS)}  # fmt: skip
    return page_script_result(HARNESS, values)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_a_stream_refused_again_and_again_is_asked_again_within_15_s_its_delays_still_spread():
    delays = delays_set_by_the_page()
    assert max(delays["latest"]) <= 15_000, f"a refused stream asked again after more than 15 s: {delays}"
    assert delays["soonest"][0] == pytest.approx(2_400) and delays["latest"][0] == pytest.approx(3_600), (
        f"the first retry is about 3 s, spread by a fifth either way: {delays}"
    )
    soonest, latest = delays["soonest"][-1], delays["latest"][-1]
    assert latest - soonest >= 0.3 * latest, (
        f"at the longest delay the screens refused together must still not all ask again at once: {delays}"
    )
