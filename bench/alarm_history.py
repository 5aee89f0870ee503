"""What a ward's alarm history costs the bridge's housekeeping: each check's "anything due?" query, run after every
commit, against a table of cleared alarms that only grows (nothing prunes alarms: they are the record).

    for n in 0 100000 400000; do .venv/bin/python bench/alarm_history.py --database sqlite --history $n; done
    .venv/bin/python bench/alarm_history.py --database postgres --history 400000

A fresh database per run (`bench/status_cost.py`'s set-up), 400 pumps with a running session each, 20 active
alarms (some acknowledged, one `alarm_flood` holding counts), then the history: cleared alarms spread over the pumps.
Each check's `*_due_by` is timed (median of `--repeat` calls, ms) with the migration's indexes, and again with the
active alarms' partial index dropped, in the same run. Never part of `make test`.
"""

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.status_cost import configured  # noqa: E402

PUMPS = 400
ACTIVE = 20
ACTIVE_INDEX = "alarm_active_by_type"


def world_make(history: int) -> None:
    """400 pumps infusing, 20 active alarms, `history` cleared ones."""
    from django.utils import timezone

    from devices.models import Alarm, Device, InfusionSession, Ward
    from devices.states import AlarmPriority, AlarmSource, AlarmState, SessionStatus

    now = timezone.now()
    ward = Ward.objects.create(code="bench-history", name="Bench")
    pumps = Device.objects.bulk_create(
        [Device(device_id=f"P{n:04d}", ward=ward, last_seen_at=now, latest_progress_at=now) for n in range(PUMPS)]
    )
    InfusionSession.objects.bulk_create([
        InfusionSession(device=pump, infusion_id=f"inf_{pump.device_id}", status=SessionStatus.RUNNING,
                        flow_rate_ml_min=1.0, planned_volume_ml=100.0, planned_time_min=100.0, status_changed_at=now)
        for pump in pumps
    ])  # fmt: skip
    cleared = [Alarm(device=pumps[n % PUMPS], type=f"occlusion_{n % 7}", priority=AlarmPriority.HIGH,
                     source=AlarmSource.DEVICE, state=AlarmState.CLEARED, message="Line blocked",
                     raised_at=now - timedelta(minutes=n), cleared_at=now - timedelta(minutes=n, seconds=-30))
               for n in range(history)]  # fmt: skip
    Alarm.objects.bulk_create(cleared, batch_size=5_000)
    active = [Alarm(device=pumps[n], type="air_in_line", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                    state=AlarmState.ACTIVE, message="Air in line", raised_at=now,
                    acknowledged_at=now if n % 2 else None) for n in range(ACTIVE - 1)]  # fmt: skip
    active.append(Alarm(device=pumps[ACTIVE], type="alarm_flood", priority=AlarmPriority.HIGH,
                        source=AlarmSource.SERVER, state=AlarmState.ACTIVE, message="Flood", raised_at=now,
                        details={"countsHeld": {"since": now.isoformat(), "repeats": 3}}))  # fmt: skip
    Alarm.objects.bulk_create(active)


def due_checks() -> dict:
    """Each housekeeping check's "anything due by this moment?" (`realtime/bridge/housekeeping.py`)."""
    from devices import housekeeping_selectors as due
    from realtime.bridge.housekeeping import Housekeeping

    keeper = Housekeeping()
    return {name: check[1] for name, check in keeper.checks.items()} | {
        "escalations (selector)": due.escalations_due_by
    }


def timed(call, moment, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call(moment)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(repeat: int) -> dict[str, float]:
    from django.utils import timezone

    moment = timezone.now() + timedelta(seconds=1)
    return {name: timed(call, moment, repeat) for name, call in due_checks().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--history", type=int, default=100_000, help="cleared alarms (one database per process)")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    history = args.history
    with configured(args.database):
        from django.db import connection

        world_make(history)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        with_index = measure(args.repeat)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {ACTIVE_INDEX}")
            cursor.execute("ANALYZE")
        without = measure(args.repeat)
    print(f"\n{args.database}, {history:,} cleared alarms: median ms per call, with / without {ACTIVE_INDEX}")
    for name in with_index:
        print(f"  {name:24s} {with_index[name]:8.2f} / {without[name]:8.2f}")
    print(f"  {'all':24s} {sum(with_index.values()):8.2f} / {sum(without.values()):8.2f}")


if __name__ == "__main__":
    main()
