"""The publisher's lag on its own: from a change's commit to the fan-out receiving it, woken and by poll only.

    .venv/bin/python -m bench.publisher_lag --changes 300

A fresh SQLite file (WAL, as in production), a few pumps, one `ChangePublisher` on an asyncio loop (as in
Daphne) and a writer thread committing one change at a time through the services (`device_lock`,
`change_record`), paced, as a page's request does. With the commit listener installed (Daphne's own
commits, or the bridge's wake) the lag is the wake's hop plus one read; without it, only the safety poll
(`PUBLISHER_POLL_S`) finds the change: that is the delay the wake removes.
"""

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.system import django_configure, pumps_create


def measure(changes: int, *, woken: bool, poll_s: float, on_loop: bool = True) -> list[float]:
    """Lags in ms (just before COMMIT -> fan-out got it) for `changes` commits, one every 20 ms.

    `on_loop`: the publisher reads the log on its loop (SQLite, `devices/logreader.py`); else through the
    ORM on its reader thread.
    """
    from django.conf import settings
    from django.db import transaction

    from devices.services.changelog import change_log_listen, change_log_unlisten
    from devices.services.changes import change_record, device_lock
    from protocol import events
    from realtime.fanout import FanOut
    from realtime.publisher import ChangePublisher

    committed: dict[tuple[str, int], float] = {}
    lags: list[float] = []
    fanout = FanOut()
    fanout.release_listeners.append(
        lambda change: lags.append((time.perf_counter() - committed[(change.device_id, change.seq)]) * 1000)
    )
    device_ids = ["BENCH_0000", "BENCH_0001", "BENCH_0002"]

    def write() -> None:
        for n in range(changes):
            with transaction.atomic():
                device = device_lock(device_id=device_ids[n % len(device_ids)])
                change = change_record(device=device, event=events.DEVICE_STATUS, body={"status": {"n": n}})
                committed[(change.device_id, change.seq)] = time.perf_counter()  # COMMIT follows
            time.sleep(0.02)

    settings.PUMPSTREAM["PUBLISHER_READ_ON_LOOP"] = on_loop

    async def main() -> None:
        publisher = ChangePublisher(fanout, poll_s=poll_s)
        await publisher.ready()
        if woken:
            change_log_listen(publisher.wake)
        writer = threading.Thread(target=write)
        writer.start()
        while len(lags) < changes:
            await asyncio.sleep(0.01)
        writer.join()
        change_log_unlisten(publisher.wake)

    asyncio.run(main())
    return lags


def summary(lags: list[float], cpu_s: float | None = None) -> str:
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    cpu = f" process CPU {cpu_s * 1e6 / len(lags):.0f} us/change" if cpu_s is not None else ""
    return f"n={len(lags)} p50={statistics.median(lags):.2f} ms p99={p99:.2f} ms max={ordered[-1]:.2f} ms{cpu}"


def compare(changes: int, poll_s: float, rounds: int) -> None:
    """Woken, read on the loop against read through the ORM on a thread, alternated `rounds` times."""
    import os

    for n in range(rounds):
        for on_loop in (True, False):
            load = os.getloadavg()[0]
            started = time.process_time()
            lags = measure(changes, woken=True, poll_s=poll_s, on_loop=on_loop)
            label = "on the loop (SQLite)" if on_loop else "ORM on a thread   "
            print(f"round {n + 1} {label} load {load:.2f}:", summary(lags, time.process_time() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--compare", type=int, metavar="ROUNDS", help="read on the loop vs the ORM, alternated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pumpstream-publisher-") as workdir:
        django_configure(Path(workdir) / "publisher.sqlite3")
        pumps_create(3)
        if args.compare:
            compare(args.changes, args.poll_s, args.compare)
            return
        print("woken after each commit:", summary(measure(args.changes, woken=True, poll_s=args.poll_s)))
        print("safety poll only:       ", summary(measure(args.changes, woken=False, poll_s=args.poll_s)))


if __name__ == "__main__":
    main()
