"""Scenario files: timed steps that script clinical stories and faults against one pump (docs/simulator.md)."""

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import topics
from realtime.simulator.device import SimulatedPump
from realtime.simulator.messages import Message
from realtime.simulator.pump import PumpPhase

logger = logging.getLogger(__name__)

ACTIONS = {"start", "reject", "pause", "resume", "stop", "complete", "progress", "status", "error", "clear",
           "offline", "online", "network_drop", "duplicate", "out_of_order", "malformed", "say"}  # fmt: skip
WAITABLE = {*(phase.value for phase in PumpPhase), "connected", "disconnected"}
MALFORMED = {
    "not_json": (topics.PROGRESS, b"{not json"),
    "not_object": (topics.PROGRESS, b"[1, 2, 3]"),
    "wrong_types": (topics.PROGRESS, {"progressPercent": "lots", "deliveredVolumeMl": "a little"}),
    "missing_status": (topics.STATUS, {"batteryLevel": 80}),
    "oversize": (topics.STATUS, {"status": "running", "padding": "x" * 17_000}),
    "bad_device_id": (topics.STATUS, {"status": "online"}),
}


class ScenarioError(ValueError):
    """A scenario file that does not follow the format; the message names the step."""


@dataclass(frozen=True)
class Step:
    """One step: wait `after` seconds then `do` an action, or `wait` for a pump state (up to `timeout`)."""

    after: float = 0.0
    do: str = ""
    wait: str = ""
    timeout: float = 60.0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A described list of steps, and how the pump runs it."""

    description: str
    steps: list[Step]
    pump: dict[str, Any] = field(default_factory=dict)  # legacy, autoAccept, speed: defaults for the command


def parse_step(index: int, raw: Any) -> Step:
    """Validate one step; raises ScenarioError naming the step."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"step {index}: must be an object")
    raw = dict(raw)
    after, do, wait = raw.pop("after", 0), raw.pop("do", ""), raw.pop("wait", "")
    timeout = raw.pop("timeout", 60)
    if not isinstance(after, int | float) or after < 0 or not isinstance(timeout, int | float):
        raise ScenarioError(f"step {index}: 'after' and 'timeout' must be non-negative numbers of seconds")
    if bool(do) == bool(wait):
        raise ScenarioError(f"step {index}: give exactly one of 'do' or 'wait'")
    if do and do not in ACTIONS:
        raise ScenarioError(f"step {index}: unknown action {do!r}; one of {', '.join(sorted(ACTIONS))}")
    if wait and wait not in WAITABLE:
        raise ScenarioError(f"step {index}: cannot wait for {wait!r}; one of {', '.join(sorted(WAITABLE))}")
    if do in ("error", "clear") and not isinstance(raw.get("type"), str):
        raise ScenarioError(f"step {index}: '{do}' needs a 'type'")
    if do == "malformed" and raw.get("variant") not in MALFORMED:
        raise ScenarioError(f"step {index}: 'malformed' needs a 'variant', one of {', '.join(MALFORMED)}")
    return Step(after=float(after), do=do, wait=wait, timeout=float(timeout), args=raw)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise ScenarioError("a scenario is an object with a list of 'steps'")
    steps = [parse_step(index, step) for index, step in enumerate(raw["steps"], start=1)]
    return Scenario(description=str(raw.get("description", "")), steps=steps, pump=dict(raw.get("pump") or {}))


async def wait_for_state(pump: SimulatedPump, state: str, timeout: float) -> None:
    """Wait until the pump is in `state` (a phase, `connected` or `disconnected`); TimeoutError after `timeout`."""

    def reached() -> bool:
        if state in ("connected", "disconnected"):
            return pump.link.connected == (state == "connected")
        return pump.phase.value == state

    async def until_reached() -> None:
        while not reached():
            await _poll(pump.changed)

    await asyncio.wait_for(until_reached(), timeout=timeout)


async def _poll(changed: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(changed.wait(), timeout=0.2)  # link state changes without an event: poll too
    except TimeoutError:
        return


async def run_step(pump: SimulatedPump, step: Step) -> None:
    """Perform one step against the pump."""
    if step.after:
        await asyncio.sleep(step.after)
    if step.wait:
        await wait_for_state(pump, step.wait, step.timeout)
        return
    args = step.args
    simple = {"start": pump.accept, "reject": pump.reject, "complete": pump.complete,
              "pause": lambda: pump.pause(manual=True), "resume": lambda: pump.resume(manual=True),
              "stop": lambda: pump.stop(manual=True), "progress": pump.report_progress, "status": pump.report_status,
              "error": lambda: pump.raise_fault(args["type"]), "clear": lambda: pump.clear_fault(args["type"]),
              "offline": pump.link.drop, "online": pump.link.start,
              "say": lambda: logger.info("scenario: %s", args.get("text", ""), extra={"device_id": pump.device_id}),
              }  # fmt: skip
    if step.do in simple:
        simple[step.do]()
    elif step.do == "network_drop":
        pump.link.drop()
        await asyncio.sleep(float(args.get("seconds", 3)))
        pump.link.start()
    elif step.do == "duplicate":
        duplicate_last(pump, args.get("kind", topics.PROGRESS), int(args.get("times", 1)))
    elif step.do == "out_of_order":
        pump.hold_next = args.get("kind", topics.PROGRESS)
    elif step.do == "malformed":
        publish_malformed(pump, args["variant"])


def duplicate_last(pump: SimulatedPump, kind: str, times: int = 1) -> None:
    """Publish the last message of `kind` again, byte for byte (same seq and bootId): a redelivery."""
    last = next((message for message in reversed(pump.sent) if message.topic.endswith(f"/{kind}")), None)
    for _ in range(times if last else 0):
        pump.link.publish(last)


def publish_malformed(pump: SimulatedPump, variant: str) -> None:
    """Publish one of the known-bad payloads the bridge must survive."""
    kind, payload = MALFORMED[variant]
    device_id = "BAD DEVICE!" if variant == "bad_device_id" else pump.device_id
    pump.link.publish(Message(topics.device_topic(device_id, kind), payload, qos=1))


async def run_scenario(pump: SimulatedPump, scenario: Scenario) -> None:
    """Run every step in order; a wait that times out stops the scenario with a logged error."""
    for index, step in enumerate(scenario.steps, start=1):
        try:
            await run_step(pump, step)
        except TimeoutError:
            logger.error("scenario step %d: %s not reached within %gs", index, step.wait, step.timeout,
                         extra={"device_id": pump.device_id})  # fmt: skip
            raise
