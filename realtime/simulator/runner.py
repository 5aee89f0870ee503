"""Running simulated pumps in the modes `simulate_pump` offers: interactive, automatic, fleet, scenario."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable

from realtime.simulator.device import SimulatedPump
from realtime.simulator.fleet import run_pumps
from realtime.simulator.interactive import PumpPrompt, run_prompt
from realtime.simulator.scenario import Scenario, run_scenario

logger = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT (honcho and Ctrl-C), so pumps disconnect cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def stop_after(stop: asyncio.Event, seconds: float | None) -> None:
    """Set `stop` after `seconds` (never when None)."""
    if seconds is not None:
        await asyncio.sleep(seconds)
        stop.set()


async def simulate(pumps: list[SimulatedPump], *, duration_s: float | None = None) -> None:
    """Automatic pumps (one or a fleet) until a signal or `duration_s`."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    timer = asyncio.create_task(stop_after(stop, duration_s))
    await run_pumps(pumps, until=stop)
    timer.cancel()


async def simulate_interactive(pump: SimulatedPump, write: Callable[[str], None], lines: AsyncIterator[str]) -> None:
    """One pump driven from the prompt until `quit` or the end of input."""
    stop = asyncio.Event()
    stop_on_signals(stop)

    async def prompt_then_stop() -> None:
        try:
            await run_prompt(PumpPrompt(pump, write), lines)
        finally:
            stop.set()

    prompt = asyncio.create_task(prompt_then_stop())
    await run_pumps([pump], until=stop)
    prompt.cancel()


async def simulate_scenario(
    pump: SimulatedPump, scenario: Scenario, *, linger_s: float = 1.0, duration_s: float | None = None
) -> bool:
    """One automatic pump following a scenario; True when every step ran (a wait may time out)."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    outcome = {"ok": False}

    async def steps() -> None:
        try:
            await run_scenario(pump, scenario)
            outcome["ok"] = True
            await asyncio.sleep(linger_s)
        except TimeoutError:
            outcome["ok"] = False
        finally:
            if duration_s is None:
                stop.set()

    task = asyncio.create_task(steps())
    timer = asyncio.create_task(stop_after(stop, duration_s))
    await run_pumps([pump], until=stop)
    task.cancel()
    timer.cancel()
    return outcome["ok"]
