"""The bridge's rate on one pump's burst of statuses, in-process: `Bridge.step` as the worker runs it, on
PostgreSQL or SQLite (the 3,000-status SIGKILL test's load, without the broker and the kills).

The inbox is filled as the broker fills it (up to `--window` unacknowledged messages, the Receive Maximum);
each message acknowledged frees room for the next. Run from the project root:

    .venv/bin/python bench/status_cost.py --database postgres --messages 3000
    .venv/bin/python bench/status_cost.py --database sqlite --messages 3000 --profile 25

PostgreSQL is a throwaway cluster (`tests/support/postgres.py`, durability off as in the tests). It never runs
in `make test`; alternate the two databases and read the spread (the machine is shared).
"""

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def django_configure(database: str, workdir: Path) -> object | None:
    """Point Django at a fresh database (a throwaway PostgreSQL cluster or a file SQLite) and migrate it."""
    from bench.bridge_ingest import PRODUCTION_ENV

    os.environ.update(PRODUCTION_ENV)
    os.environ.update(DJANGO_SETTINGS_MODULE="pumpstream.settings", LOG_LEVEL="WARNING", REPORT_BUDGET_PER_S="0")
    cluster = None
    if database == "postgres":
        from tests.support.postgres import PostgresCluster

        cluster = PostgresCluster()
        url = cluster.start()
        import psycopg

        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE pumpstream")
        os.environ["DATABASE_URL"] = url
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'status.sqlite3'}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return cluster


@contextlib.contextmanager
def configured(database: str):
    """Django on a fresh database for the duration (a throwaway PostgreSQL cluster is stopped after)."""
    with tempfile.TemporaryDirectory(prefix="pumpstream-status-") as workdir:
        cluster = django_configure(database, Path(workdir))
        try:
            yield
        finally:
            if cluster is not None:
                from django.db import connections

                connections.close_all()
                cluster.stop()


def statuses_make(count: int, pumps: int) -> list:
    """`count` status messages with seq+bootId, pumps taken round-robin (the test: one pump)."""
    from realtime.bridge.ingest import InboundMessage

    return [
        InboundMessage(
            topic=f"devices/PUMP_{index % pumps:04d}/status",
            mid=index % 65535 + 1,
            payload=f'{{"status":"testing","seq":{index // pumps},"bootId":"bench","timestamp":{index}}}'.encode(),
        )  # fmt: skip
        for index in range(count)
    ]


def drive(bridge, messages: list, window: int) -> int:
    """Feed the inbox up to `window` unacknowledged messages and step the worker until all are committed."""
    acked = [0]

    def committed(batch, outcomes):
        acked[0] += len(batch)
        bridge._after_commit(batch, outcomes)

    bridge.committer.on_committed = committed
    sent = 0
    while acked[0] < len(messages):
        while sent < len(messages) and sent - acked[0] < window:
            bridge.inbox.put(messages[sent])
            sent += 1
        bridge.step()
    return bridge.stats["batches"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--pumps", type=int, default=1)
    parser.add_argument("--window", type=int, default=1000, help="unacknowledged messages the broker hands out")
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N functions")
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    with configured(args.database):
        from realtime.bridge.worker import Bridge
        from tests.factories import make_device

        for index in range(args.pumps):
            make_device(f"PUMP_{index:04d}")
        bridge = Bridge(name="bench-status")
        drive(bridge, statuses_make(50, args.pumps), args.window)  # warm-up: seqs 0.. are then duplicates
        bridge.stats.clear()
        messages = statuses_make(args.messages + 50, args.pumps)[50:]
        profiler = cProfile.Profile() if args.profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        batches = drive(bridge, messages, args.window)
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{args.database}: {args.messages} statuses of {args.pumps} pump(s) in {elapsed:.2f} s: "
              f"{args.messages / elapsed:.0f}/s, {batches} batches, {1000 * cpu / args.messages:.2f} ms CPU "
              f"a status (this process)")  # fmt: skip
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.profile)


if __name__ == "__main__":
    main()
