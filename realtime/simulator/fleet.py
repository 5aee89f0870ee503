"""Many simulated pumps on one asyncio event loop, each ticking on its own phase (no thread per pump)."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from realtime.simulator.device import PumpSettings, SimulatedPump
from realtime.simulator.pump import Order

logger = logging.getLogger(__name__)

DEMO_ORDER = Order(flow_rate_ml_min=2.0, planned_volume_ml=60.0, planned_time_min=30.0,
                   bolus_enabled=True, bolus_volume_ml=2.0)  # fmt: skip


def fleet_ids(count: int, prefix: str = "SIM_") -> list[str]:
    """`count` pump ids: SIM_0001, SIM_0002, …"""
    return [f"{prefix}{number:04d}" for number in range(1, count + 1)]


def fleet_settings(device_ids: list[str], base: PumpSettings, *, rate_hz: float = 1.0) -> list[PumpSettings]:
    """One settings object per pump, their ticks spread evenly over one progress interval."""
    interval = 1.0 / rate_hz
    count = max(len(device_ids), 1)
    return [
        replace(base, device_id=device_id, progress_interval_s=interval, phase_s=interval * index / count)
        for index, device_id in enumerate(device_ids)
    ]


async def run_pumps(pumps: list[SimulatedPump], *, until: asyncio.Event, on_started: Callable[[], None] = None) -> None:
    """Run every pump until `until` is set, then disconnect them all cleanly."""
    tasks = [asyncio.create_task(pump.run(), name=pump.device_id) for pump in pumps]
    logger.info("simulating %d pumps", len(pumps))
    if on_started:
        on_started()
    waiter = asyncio.create_task(until.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not waiter and task.exception() is not None:
            logger.error("pump %s failed: %r", task.get_name(), task.exception(), extra={"device_id": task.get_name()})
    for task in [waiter, *tasks]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
