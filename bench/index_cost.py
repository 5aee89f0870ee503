"""What an index costs the bridge's commits, in-process: the same batches with the named indexes present and dropped,
alternated in one process on one database (issue 17; migration 0038 dropped the pump's own index of the receipts and
of the change log, which their unique constraints' indexes made redundant).

One process, one fresh file SQLite database (WAL), `Bridge.commit` on batches of routine progress as
`bench/batch_cost.py` runs them; then rounds: the indexes created (as before 0038), a chunk of batches timed, the
indexes dropped (as now), a chunk timed, and so on, so that both states see the same heap, the same database and the
same moment of a shared machine. Per chunk: CPU per message (`time.process_time`, SQLite's own checkpoints included:
this process's connection checkpoints in its commits, as the bridge's checkpoint thread does in the same process) and
WAL frames (pages) written per batch. Run from the project root:

    .venv/bin/python bench/index_cost.py --pumps 400 --batch 1 --chunk 1000 --rounds 6

It never runs in `make test`; read the per-round ratios (the machine is shared).
"""

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.batch_cost import batches_make  # noqa: E402
from bench.bridge_ingest import PRODUCTION_ENV, configure_django, pumps_create  # noqa: E402

# (table, index, column): the indexes migration 0038 dropped
DROPPED = [
    ("devices_changelogentry", "devices_changelogentry_device_id_f55e956c", "device_id"),
    ("devices_messagereceipt", "devices_messagereceipt_device_id_8b8a2890", "device_id"),
]
WAL_FRAME = 24 + 4096  # a frame's header and one page (the default page size)


def indexes_set(present: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table, index, column in DROPPED:
            if present:
                cursor.execute(f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")')
            else:
                cursor.execute(f'DROP INDEX IF EXISTS "{index}"')
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # each chunk starts from an empty log


def chunk_run(bridge, batches: list[list], wal: Path) -> tuple[float, float]:
    """CPU ms per message and WAL frames per batch over `batches`: no checkpoint within the chunk (frames counted as
    the log's growth), then one checkpoint of what it wrote, counted in its CPU."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # frames counted from the log's size; checkpointed after
    size = wal.stat().st_size if wal.exists() else 0
    gc.collect()
    cpu = time.process_time()
    for batch in batches:
        bridge.commit(batch)
    cpu = time.process_time() - cpu
    frames = (wal.stat().st_size - size) / WAL_FRAME / len(batches)
    started = time.process_time()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the pages' copy into the file: counted with the chunk
    cpu += time.process_time() - started
    return 1000 * cpu / sum(map(len, batches)), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=1, help="messages per batch")
    parser.add_argument("--chunk", type=int, default=1000, help="batches per timed chunk")
    parser.add_argument("--rounds", type=int, default=6, help="alternations: each round times both states")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    os.environ.update(PRODUCTION_ENV)
    with tempfile.TemporaryDirectory(prefix="pumpstream-index-") as workdir:
        database = Path(workdir) / "cost.sqlite3"
        configure_django(database)
        from realtime.bridge.worker import Bridge

        device_ids = pumps_create(args.pumps, running=True)
        bridge = Bridge(name="bench-index")
        every = batches_make(device_ids, args.batch, 200 + 2 * args.rounds * args.chunk)
        for batch in every[:200]:
            bridge.commit(batch)
        gc.freeze()
        rest, runs = every[200:], []
        for round_ in range(args.rounds):
            # the state run first alternates too, so that neither always follows the index's creation
            order = [True, False] if round_ % 2 == 0 else [False, True]
            figures = {}
            for present in order:
                indexes_set(present)
                chunk, rest = rest[: args.chunk], rest[args.chunk :]
                figures[present] = chunk_run(bridge, chunk, Path(f"{database}-wal"))
            (with_ms, with_frames), (without_ms, without_frames) = figures[True], figures[False]
            run = {"round": round_, "load_1m": round(os.getloadavg()[0], 2), "with_ms": round(with_ms, 4),
                   "without_ms": round(without_ms, 4), "with_frames": round(with_frames, 2),
                   "without_frames": round(without_frames, 2)}  # fmt: skip
            run["ratio"] = round(run["without_ms"] / run["with_ms"], 3)
            runs.append(run)
            print(json.dumps(run), flush=True)
        summary = {key: {"median": statistics.median(r[key] for r in runs), "min": min(r[key] for r in runs),
                         "max": max(r[key] for r in runs)}
                   for key in ("with_ms", "without_ms", "ratio", "with_frames", "without_frames")}  # fmt: skip
        medians = {key: value["median"] for key, value in summary.items()}
        print(f"batch {args.batch}, {args.rounds} rounds of {args.chunk} batches: CPU ms per message with the indexes "
              f"{summary['with_ms']}, without {summary['without_ms']}; without / with per round {summary['ratio']}; "
              f"WAL frames per batch {medians['with_frames']} -> {medians['without_frames']}")  # fmt: skip
        if args.out:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            arguments = {key: str(value) for key, value in vars(args).items()}
            args.out.write_text(
                json.dumps({"args": arguments, "runs": runs, "summary": summary, "when": when}, indent=1)
            )


if __name__ == "__main__":
    main()
