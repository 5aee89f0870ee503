"""The bridge's cost per batch, in-process: `Bridge.commit` on batches of routine progress, timed and profiled.

No broker, no network: the worker thread's own work per batch (checks, lock, receipts, updates, commit,
forward buffering) on a fresh file SQLite database, for the batch sizes the bridge sees (1-3 messages at
hospital load with window 0, hundreds under a backlog). Run from the project root:

    .venv/bin/python bench/batch_cost.py --pumps 400 --batch 2 --batches 2000
    .venv/bin/python bench/batch_cost.py --pumps 400 --batch 2 --profile 25     # cProfile, top 25 by own time

It never runs in `make test`; repeat it and read the spread (the machine is shared).
"""

import argparse
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bridge_ingest import PRODUCTION_ENV, configure_django, progress_payload, pumps_create  # noqa: E402


def batches_make(device_ids: list[str], size: int, count: int) -> list[list]:
    """`count` batches of `size` messages, each from a different pump, pumps taken round-robin."""
    from realtime.bridge.ingest import InboundMessage

    boot_id = f"cost-{uuid.uuid4().hex[:6]}"
    batches, index = [], 0
    for _ in range(count):
        batch = []
        for _ in range(size):
            device_id = device_ids[index % len(device_ids)]
            seq = index // len(device_ids) + 1
            batch.append(InboundMessage(topic=f"devices/{device_id}/progress", payload=progress_payload(seq, boot_id),
                                        mid=index % 65535 + 1))  # fmt: skip
            index += 1
        batches.append(batch)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=2, help="messages per batch")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="sleep between batches, as the bridge idles between messages (caches go cold)",
    )
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N functions by own time")
    parser.add_argument("--sort", default="tottime", help="with --profile: tottime or cumulative")
    parser.add_argument("--callers", help="with --profile: print who calls functions matching this")
    args = parser.parse_args()
    os.environ.update(PRODUCTION_ENV)  # DEBUG off, as the bridge runs: no SQL recorded per query
    with tempfile.TemporaryDirectory(prefix="pumpstream-cost-") as workdir:
        configure_django(Path(workdir) / "cost.sqlite3")
        from realtime.bridge.worker import Bridge

        device_ids = pumps_create(args.pumps, running=True)
        bridge = Bridge(name="bench-cost")
        # one boot and `seq` going on across both: a second bootId would be a restart of every warmed pump
        every = batches_make(device_ids, args.batch, 100 + args.batches)
        warm, measured = every[:100], every[100:]
        for batch in warm:
            bridge.commit(batch)
        gc.freeze()  # as `Bridge.run` does after start-up: the collector's scans leave Django's own objects
        profiler = cProfile.Profile() if args.profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        sleeping = 0.0
        for batch in measured:
            bridge.commit(batch)
            bridge.maybe_tick()
            if args.pause_ms:
                pause_started = time.perf_counter()
                time.sleep(args.pause_ms / 1000)
                sleeping += time.perf_counter() - pause_started
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started - sleeping, time.process_time() - cpu
        print(f"{args.batches} batches of {args.batch} from {args.pumps} pumps: {1000 * elapsed / args.batches:.3f} ms "
              f"per batch, {1000 * cpu / args.batches:.3f} ms CPU per batch, "
              f"{1000 * cpu / (args.batches * args.batch):.3f} ms CPU per message")  # fmt: skip
        if profiler:
            stats = pstats.Stats(profiler).sort_stats(args.sort)
            stats.print_stats(args.profile)
            if args.callers:
                stats.print_callers(args.callers)


if __name__ == "__main__":
    main()
