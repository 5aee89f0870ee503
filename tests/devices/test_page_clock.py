"""The pages' clock (`static/js/page_clock.js`, through format.js): a step of the browser's wall clock changes no age
and no staleness a page shows (review 35, finding 2).

format.js estimated the server's time as `Date.now()` plus an offset learnt from the server: the PC's clock put back
ten minutes made a pump silent for 5 min "online" (its age 0 s) until the next bridge poll, and for as long as the step
while the polls failed. Here node runs format.js with a wall clock and a monotonic clock the test moves itself.
"""

import json
import shutil
from pathlib import Path

import pytest

from tests.support.node import page_script_result

FORMAT_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "format.js"
PROTOCOL = {"events": {}, "activeSessionStatuses": [], "onPumpSessionStatuses": [], "unsettledCommandStates": [],
            "infusingPumpStates": ["running"]}  # fmt: skip
HEARTBEAT_TIMEOUT_S = 30
HARNESS = """
const truth = { server: 1_800_000_000_000 };  // the server's clock, and the browser's wall clock as it should read
const clocks = { wall: truth.server, monotonic: 2_000 };  // the page was opened 2 s ago
Date.now = () => Math.floor(clocks.wall);  // whole milliseconds, as browsers give it
performance.now = () => clocks.monotonic;
Object.defineProperty(performance, "timeOrigin", { value: clocks.wall - clocks.monotonic });
globalThis.document = { getElementById: (id) => id === "protocol-data" ? { textContent: PROTOCOL } : null };
const format = await import(FORMAT_JS);
const iso = (ms) => new Date(ms).toISOString();
format.setServerNow(iso(truth.server - 2_000));  // rendered as the navigation began
const pump = { connectivity: "stale", lastSeenAt: iso(truth.server - 300_000), hasPresence: false, pumpState: "idle" };
const seen = {};
const look = (when) => { seen[when] = { ageS: format.secondsSince(pump.lastSeenAt),
  connectivity: format.connectivityNow(pump, HEARTBEAT_TIMEOUT_S) }; };
const pass = (ms, { wall = ms, monotonic = ms } = {}) => {
  truth.server += ms; clocks.wall += wall; clocks.monotonic += monotonic;
};
look("rendered");
for (let n = 0; n < 1_000; n += 1) { pass(0.1); format.serverNowMs(); }  // 0.1 s read a thousand times
look("read often");
pass(1_000, { wall: 1_000 - 600_000 });  // a second on, the PC's clock put back ten minutes
look("stepped back");
pass(30_000);  // half a minute on, no poll answered (a silent network)
look("stepped back, no poll since");
pass(60_000, { monotonic: 0 });  // the machine asleep for a minute, which performance.now() left out
look("woken");
pass(1_000, { wall: 1_000 + 600_000 });  // the PC's clock put forward ten minutes
look("stepped forward");
const sentAt = format.pageClockMs?.() ?? Date.now();
pass(100);
format.noteServerTime(iso(truth.server - 50), sentAt);  // a bridge poll answered
look("a poll answered");
console.log(JSON.stringify(seen));
"""


def seen_on_the_page() -> dict:
    values = {"FORMAT_JS": json.dumps(FORMAT_JS.as_uri()), "PROTOCOL": json.dumps(json.dumps(PROTOCOL)),
              "HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S)}  # fmt: skip
    return page_script_result(HARNESS, values)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_a_step_of_the_browsers_clock_changes_no_age_and_a_sleep_still_counts():
    seen = seen_on_the_page()
    ages = {when: reading["ageS"] for when, reading in seen.items()}
    assert ages["rendered"] == pytest.approx(300, abs=0.01), seen
    assert ages["read often"] == pytest.approx(300.1, abs=0.01), f"the page clock ran ahead of the time passed: {seen}"
    assert ages["stepped back"] == pytest.approx(301.1, abs=0.01), (
        f"the PC's clock put back 10 min made a pump silent for 5 min look younger: {seen}"
    )
    assert ages["stepped back, no poll since"] == pytest.approx(331.1, abs=0.01), seen
    assert ages["woken"] == pytest.approx(391.1, abs=0.01), (
        f"a minute asleep, which performance.now() left out, must still count: {seen}"
    )
    assert ages["stepped forward"] >= 392.1, f"an age must never be guessed low: {seen}"
    assert 392.2 <= ages["a poll answered"] <= 392.26, f"the next poll corrects a clock put forward: {seen}"
    assert {reading["connectivity"] for reading in seen.values()} == {"stale"}, (
        f"a pump silent for 5 min must stay stale whatever the browser's clock does: {seen}"
    )
