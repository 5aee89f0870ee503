"""A ward switch fails: how long one housekeeping tick holds the bridge's database thread while 1,000 infusing
pumps fall silent at once, in-process on a file SQLite (or PostgreSQL) with production settings.

Every pump has a running order and was last heard past the heartbeat timeout; `Housekeeping.tick` runs as the
worker runs it (every check awake, the link settled) until every pump is alarmed `communication_lost`. Prints
each tick's duration and alarms, then the longest tick and the ticks it took. Run from the project root:

    .venv/bin/python bench/silence_storm.py --pumps 1000
    .venv/bin/python bench/silence_storm.py --pumps 1000 --per-tick 1000   # all in one go, for comparison

It never runs in `make test`; the machine is shared: alternate runs and read the spread.
"""

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.status_cost import configured  # noqa: E402


def silent_pumps_make(count: int, *, silent_for_s: float, presence: bool = True) -> None:
    """`count` registered pumps of one ward, each infusing a running order, last heard `silent_for_s` ago
    (without presence, the original firmware: each also turns stale, announced by the same ticks)."""
    from django.utils import timezone

    from devices.models import Device, InfusionSession, Ward
    from devices.states import PumpState, SessionStatus

    ward = Ward.objects.create(code="icu", name="ICU")
    heard = timezone.now() - timedelta(seconds=silent_for_s)
    devices = Device.objects.bulk_create(
        Device(device_id=f"PUMP_{index:04d}", ward=ward, bed=str(index), last_seen_at=heard, latest_progress_at=heard,
               pump_state=PumpState.RUNNING, has_presence=presence)
        for index in range(count)
    )  # fmt: skip
    InfusionSession.objects.bulk_create(
        InfusionSession(device=device, status=SessionStatus.RUNNING, flow_rate_ml_min=1, planned_volume_ml=100,
                        planned_time_min=100, status_changed_at=heard, created_at=heard)
        for device in devices
    )  # fmt: skip


def ticks_run(per_tick: int | None) -> list[tuple[float, float, int]]:
    """Tick until every pump is alarmed: (wall seconds, CPU seconds, alarms raised) per tick."""
    from django.utils import timezone

    from devices.models import Alarm, InfusionSession
    from realtime.bridge import housekeeping

    if per_tick is not None:
        housekeeping.PER_TICK = per_tick
    keeper = housekeeping.Housekeeping()
    keeper.stale_announced = set()  # a bridge running before the ward fell silent: none was stale then
    connected_since = timezone.now() - timedelta(hours=1)
    silent = InfusionSession.objects.count()
    ticks: list[tuple[float, float, int]] = []
    while Alarm.objects.filter(type="communication_lost").count() < silent and len(ticks) < 100:
        before = Alarm.objects.filter(type="communication_lost").count()
        started, cpu = time.perf_counter(), time.process_time()
        keeper.tick(timezone.now(), connected_since=connected_since)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        ticks.append((elapsed, cpu, Alarm.objects.filter(type="communication_lost").count() - before))
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=1000)
    parser.add_argument("--per-tick", type=int, default=None, help="override housekeeping.PER_TICK")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--without-presence", action="store_true", help="the original firmware's pumps")
    args = parser.parse_args()
    with configured(args.database):
        from django.conf import settings

        silent_for_s = float(settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"]) + 60
        silent_pumps_make(args.pumps, silent_for_s=silent_for_s, presence=not args.without_presence)
        ticks = ticks_run(args.per_tick)
    for index, (seconds, cpu, alarms) in enumerate(ticks):
        print(f"tick {index}: {seconds * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU), {alarms} alarms")
    walls, cpus = sorted(seconds for seconds, _, _ in ticks), sorted(cpu for _, cpu, _ in ticks)
    print(f"{args.pumps} pumps alarmed in {len(ticks)} ticks; tick wall median {walls[len(walls) // 2] * 1000:.0f} ms, "
          f"max {walls[-1] * 1000:.0f} ms; CPU median {cpus[len(cpus) // 2] * 1000:.0f} ms, "
          f"max {cpus[-1] * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
