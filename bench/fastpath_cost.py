"""The hand-written SQL fast path against the plain ORM, per piece, on SQLite and PostgreSQL (issue 16).

`Bridge.commit` on batches of routine progress (as `bench/batch_cost.py`), with each piece of the fast path
swapped in turn for what Django offers:

- `lock`: `progress_pumps_lock` (`select_in_sql` + `models_select`) against querysets
  (`select_for_update().filter(device_id__in=...)`, `filter(...).only(...)`, `values_list`);
- `update`: `sql.rows_update` (one prepared UPDATE per row, executemany) against `bulk_update`;
- `receipts`: `message_receipts_claim`'s SQL (one INSERT ... ON CONFLICT DO NOTHING RETURNING) against a
  `values_list` query and `bulk_create`;
- `changelog`: `change_log_append`'s executemany INSERT against `bulk_create` of `ChangeLogEntry` models;
- `orm`: all three at once; `fast`: none (the code as it is).

One process per database; in it the variants alternate, `--repeats` rounds, so every compared run shares the
machine's period (the machine's speed varies about 2x over minutes). Prints per variant and batch size the
median and range of ms per batch (wall, and the bridge process's own CPU), and the range of each round's ratio to
`fast` (paired runs of one round share the machine's mood). Run from the project root:

    .venv/bin/python bench/fastpath_cost.py --database sqlite
    .venv/bin/python bench/fastpath_cost.py --database postgres     # starts a throwaway cluster

It never runs in `make test`.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bridge_ingest import PRODUCTION_ENV, progress_payload, pumps_create  # noqa: E402

VARIANTS = ("fast", "lock", "update", "receipts", "changelog", "orm")
SWAPS = {"fast": (), "lock": ("lock",), "update": ("update",), "receipts": ("receipts",), "changelog": ("changelog",),
         "orm": ("lock", "update", "receipts", "changelog")}  # fmt: skip


def configure_django(database_url: str) -> None:
    """Point Django at `database_url` (fresh) before anything imports the models, and migrate it."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "pumpstream.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("PROGRESS_FLOOD_PER_S", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def orm_pumps_lock(*, device_ids):
    """`progress_pumps_lock` written with querysets only."""
    from collections import defaultdict as _defaultdict

    from devices.models import Alarm, Device, InfusionSession
    from devices.services import progress, progress_lock
    from devices.states import AlarmState

    keys = sorted(set(device_ids))
    if not keys:
        return {}
    devices = list(
        Device.objects.select_for_update(of=("self",)).filter(device_id__in=keys).select_related("ward")
        .defer("latest_progress").order_by("pk")
    )  # fmt: skip
    pks = [device.pk for device in devices]
    sessions = InfusionSession.objects.filter(device__in=pks, status__in=progress.ACTIVE)
    session_of = {session.device_id: session for session in sessions.only(*progress_lock.SESSION_LOCKED_FIELDS)}
    watched = Alarm.objects.filter(device__in=pks, type__in=progress.SERVER_ALARMS_WATCHED, state=AlarmState.ACTIVE)
    alarms, divergent = _defaultdict(set), _defaultdict(set)
    for device_pk, alarm_type, error_code, session_pk in watched.values_list("device", "type", "error_code", "session"):
        alarms[device_pk].add((alarm_type, error_code))
        if alarm_type == progress.DIVERGENCE_KEY:
            divergent[device_pk].add(session_pk)
    return {d.device_id: progress.ProgressPump(d, session_of.get(d.pk), alarms[d.pk], divergent[d.pk]) for d in devices}


def orm_rows_update(rows, field_names, prepared) -> None:
    """`sql.rows_update` as Django's `bulk_update`."""
    if rows:
        type(rows[0]).objects.bulk_update(rows, field_names)


def orm_receipts_claim(*, receipts):
    """`message_receipts_claim` with a `values_list` query and `bulk_create`."""
    from devices.models import MessageReceipt

    if not receipts:
        return []
    stored = MessageReceipt.objects.filter(device__in={r.device_pk for r in receipts},
                                           boot_id__in={r.boot_id for r in receipts},
                                           device_seq__in={r.device_seq for r in receipts})  # fmt: skip
    existing = set(stored.values_list("device", "boot_id", "device_seq", "digest"))
    fresh, claimed = [], []
    for receipt in receipts:
        key = tuple(receipt[:4])
        claimed.append(key not in existing)
        if key not in existing:
            existing.add(key)
            fresh.append(MessageReceipt(device_id=key[0], boot_id=key[1], device_seq=key[2], digest=key[3],
                                        received_at=receipt.received_at))  # fmt: skip
    MessageReceipt.objects.bulk_create(fresh)
    return claimed


def orm_change_log_append(*, entries) -> None:
    """`change_log_append` as `bulk_create` of model instances (as it was before 2026-12-03)."""
    from django.db import transaction
    from django.utils import timezone

    from devices.models import ChangeLogEntry
    from devices.services import changelog

    if not entries:
        return
    now = timezone.now()
    ChangeLogEntry.objects.bulk_create([
        ChangeLogEntry(device_id=device_pk, device_code=change.device_id, seq=change.seq, event=change.event,
                       body=change.body, ward_code=change.ward_code, created_at=now)
        for device_pk, change in entries
    ])  # fmt: skip
    if changelog._Listeners.installed:
        transaction.on_commit(changelog._committed, robust=True)


def swapped(pieces: tuple[str, ...]):
    """Replace the named pieces of the fast path by their ORM versions for the duration."""
    from devices.services import progress
    from realtime.bridge import ingest

    targets = {"lock": (ingest, "progress_pumps_lock", orm_pumps_lock),
               "update": (progress, "rows_update", orm_rows_update),
               "receipts": (ingest, "message_receipts_claim", orm_receipts_claim),
               "changelog": (progress, "change_log_append", orm_change_log_append)}  # fmt: skip
    return pieces_swapped(targets, pieces)


@contextlib.contextmanager
def pieces_swapped(targets: dict[str, tuple], pieces: tuple[str, ...]):
    """For the duration, each named piece's `(module, name, replacement)` in `targets` is the module's `name`."""
    saved = []
    for piece in pieces:
        module, name, replacement = targets[piece]
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


class Traffic:
    """Routine progress of every pump from one boot, `seq` increasing per pump across the whole run."""

    def __init__(self, device_ids: list[str]) -> None:
        self.device_ids, self.boot_id, self.index = device_ids, f"fast-{uuid.uuid4().hex[:6]}", 0

    def batches(self, size: int, count: int) -> list[list]:
        from realtime.bridge.ingest import InboundMessage

        made = []
        for _ in range(count):
            batch = []
            for _ in range(size):
                device_id = self.device_ids[self.index % len(self.device_ids)]
                seq = self.index // len(self.device_ids) + 1
                payload = progress_payload(seq, self.boot_id)
                batch.append(InboundMessage(topic=f"devices/{device_id}/progress", payload=payload,
                                            mid=self.index % 65535 + 1))  # fmt: skip
                self.index += 1
            made.append(batch)
        return made


def measure(bridge, batches: list[list]) -> tuple[float, float]:
    """ms of wall time and of this process's CPU per batch for committing `batches`."""
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        bridge.commit(batch)
    return 1000 * (time.perf_counter() - started) / len(batches), 1000 * (time.process_time() - cpu) / len(batches)


def orm_commands_queued_any() -> bool:
    """`commands_queued_any` as a queryset."""
    from devices.models import Command
    from devices.states import CommandState

    return Command.objects.filter(state=CommandState.QUEUED).exists()


def tick_cost(calls: int) -> dict[str, float]:
    """µs of CPU per call of the outbox's tick look-up: the hand-written SQL against `.exists()`."""
    from devices.outbox_selectors import commands_queued_any

    costs = {}
    for name, look_up in (("tick fast", commands_queued_any), ("tick orm", orm_commands_queued_any)):
        cpu = time.process_time()
        for _ in range(calls):
            look_up()
        costs[name] = 1e6 * (time.process_time() - cpu) / calls
    return costs


def run(args: argparse.Namespace, database_url: str) -> dict:
    configure_django(database_url)
    from realtime.bridge.worker import Bridge

    device_ids = pumps_create(args.pumps, running=True)
    bridge, traffic = Bridge(name="bench-fastpath"), Traffic(device_ids)
    for batch in traffic.batches(args.pumps, 2):
        bridge.commit(batch)  # every pump heard from this boot: the measured reports are routine
    sizes = {int(size): int(count) for size, count in (item.split("x") for item in args.sizes.split(","))}
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for round_ in range(args.repeats):
        for variant in VARIANTS:
            with swapped(SWAPS[variant]):
                for size, count in sizes.items():
                    batches = traffic.batches(size, count)
                    bridge.commit(batches[0])  # the shape's SQL and caches once, not measured
                    wall, cpu = measure(bridge, batches[1:])
                    results[variant][f"{size} wall"].append(wall)
                    results[variant][f"{size} cpu"].append(cpu)
        for name, cost in tick_cost(2000).items():
            results["tick"][name].append(cost)
        print(f"round {round_ + 1} done", file=sys.stderr)
    return {variant: {size: values for size, values in by_size.items()} for variant, by_size in results.items()}


def report(database: str, results: dict) -> None:
    """Per variant and batch size: median [min-max] ms per batch, and its ratio to `fast` round by round."""
    ticks = results.pop("tick", {})
    for name, values in ticks.items():
        print(f"{name}: {statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}] µs of CPU per look-up")
    columns = list(results["fast"])
    print(
        f"\n{database}: ms per Bridge.commit batch (wall, and this process's CPU), median [min-max] of "
        f"{len(results['fast'][columns[0]])}, ratio to fast"
    )
    print(f"{'variant':<10}" + "".join(f"{'batch ' + column:>32}" for column in columns))
    for variant, by_size in results.items():
        cells = []
        for column in columns:
            values = by_size[column]
            paired = [value / fast for value, fast in zip(values, results["fast"][column], strict=True)]
            cells.append(f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}] "
                         f"x{min(paired):.2f}-{max(paired):.2f}")  # fmt: skip
        print(f"{variant:<10}" + "".join(f"{cell:>32}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pumps", type=int, default=400)
    parser.add_argument("--sizes", default="2x600,200x12", help="batch size x batches measured, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    os.environ.update(PRODUCTION_ENV)  # DEBUG off, as the bridge runs: no SQL recorded per query
    with tempfile.TemporaryDirectory(prefix="pumpstream-fastpath-") as workdir:
        cluster = None
        if args.database == "postgres":
            from tests.support.postgres import PostgresCluster

            cluster = PostgresCluster()
            url = cluster.start().rsplit("/", 1)[0] + "/postgres"  # the cluster's own database, empty
        else:
            url = f"sqlite:///{Path(workdir) / 'fastpath.sqlite3'}"
        try:
            results = run(args, url)
        finally:
            if cluster is not None:
                from django.db import connections

                connections.close_all()
                cluster.stop()
    report(args.database, results)
    if args.json:
        Path(args.json).write_text(json.dumps({"database": args.database, "results": results}, indent=1))


if __name__ == "__main__":
    main()
