"""Scenario files: every shipped example loads, mistakes are named, and the fault steps do what they say."""

import asyncio
import json
from pathlib import Path

import pytest

from realtime.simulator.scenario import ScenarioError, Step, load_scenario, run_step

SCENARIOS = sorted((Path(__file__).resolve().parents[3] / "scenarios").glob("*.json"))
ORDER = {"infusionId": "INF-1", "flowRateMlMin": 2.0, "plannedVolumeMl": 10, "plannedTimeMin": 5}


def test_the_examples_cover_the_faults_the_issue_names():
    names = {path.stem for path in SCENARIOS}
    assert {"occlusion", "air_in_line", "door_open", "low_battery", "network_drop", "duplicate_messages",
            "out_of_order", "malformed_payloads"} <= names  # fmt: skip


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_every_example_scenario_loads(path):
    scenario = load_scenario(path)
    assert scenario.description and scenario.steps


@pytest.mark.parametrize(
    ("steps", "named"),
    [([{"do": "dance"}], "step 1: unknown action 'dance'"), ([{"after": -1, "do": "pause"}], "step 1"),
     ([{"do": "pause"}, {"do": "error"}], "step 2: 'error' needs a 'type'"),
     ([{"wait": "asleep"}], "cannot wait for 'asleep'"), ([{"do": "pause", "wait": "idle"}], "exactly one"),
     ([{"do": "malformed", "variant": "rude"}], "needs a 'variant'")],
)  # fmt: skip
def test_mistakes_are_named(tmp_path, steps, named):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"description": "bad", "steps": steps}))
    with pytest.raises(ScenarioError, match=named):
        load_scenario(path)


def running_pump(make_pump):
    pump = make_pump()
    pump.handle_command("START_INFUSION", ORDER)
    pump.accept()
    return pump


def test_duplicate_sends_the_same_bytes_again(make_pump):
    pump = running_pump(make_pump)
    pump.tick(1.0)
    asyncio.run(run_step(pump, Step(do="duplicate", args={"kind": "progress", "times": 2})))
    progress = [m.encoded() for m in pump.link.published if m.topic.endswith("/progress")]
    assert len(progress) == 3 and len(set(progress)) == 1, "a duplicate is a byte-for-byte redelivery"


def test_out_of_order_sends_the_held_progress_after_the_next(make_pump):
    pump = running_pump(make_pump)
    asyncio.run(run_step(pump, Step(do="out_of_order", args={"kind": "progress"})))
    pump.tick(1.0)
    pump.tick(1.0)
    seqs = [m.payload["seq"] for m in pump.link.published if m.topic.endswith("/progress")]
    assert seqs[0] > seqs[1], f"the first progress must arrive after the second: {seqs}"


def test_malformed_payloads_go_out_as_they_are(make_pump):
    pump = running_pump(make_pump)
    asyncio.run(run_step(pump, Step(do="malformed", args={"variant": "not_json"})))
    asyncio.run(run_step(pump, Step(do="malformed", args={"variant": "bad_device_id"})))
    assert pump.link.published[-2].encoded() == b"{not json"
    assert pump.link.published[-1].topic == "devices/BAD DEVICE!/status"


def test_wait_times_out_when_the_state_never_comes(make_pump):
    pump = make_pump()
    with pytest.raises(TimeoutError):
        asyncio.run(run_step(pump, Step(wait="running", timeout=0.3)))
