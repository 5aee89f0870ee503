"""The status path's hand-written SQL against the ORM, piece by piece (issue 16's rule), in-process.

One pump's burst of statuses through `Bridge.step` (as `bench/status_cost.py` drives it), with each piece of SQL
written once swapped in turn for the ORM it replaced: `lock` (the pump's lock with its active session's pk, for
`select_related("ward").get()` and a look-up of the session, after the lock), `seen` (`model_fields_save` of
`last_seen_at`, for `save(update_fields=...)`), `digest` (the retained digest's upsert, for `update_or_create`),
`orm` (all three). The variants alternate inside each round; one process per database. Run from the project root:

    .venv/bin/python bench/status_fastpath.py --database sqlite --messages 1000 --rounds 3
    .venv/bin/python bench/status_fastpath.py --database postgres --messages 1000 --rounds 3

Prints, per variant, the CPU of this process per status (median [min-max] over the rounds) and the range of the
round-by-round ratio to `fast`. Never run by `make test`; the machine is shared, so read the spread.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fastpath_cost import pieces_swapped  # noqa: E402
from bench.status_cost import configured, drive  # noqa: E402

VARIANTS = ("fast", "lock", "seen", "digest", "orm")
PIECES = {"lock": ("lock",), "seen": ("seen",), "digest": ("digest",), "orm": ("lock", "seen", "digest")}


def orm_device_with_session(device_id: str):
    """The locked pump's read as the ORM wrote it: its row with its ward, then its active session's pk (the lock,
    on PostgreSQL a statement of its own, is `device_lock`'s in both variants)."""
    from devices.models import Device, InfusionSession
    from devices.states import ACTIVE_SESSION_STATUSES

    device = Device.objects.select_related("ward").get(device_id=device_id)
    active = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES)
    device.active_session_pk = active.values_list("pk", flat=True).first()
    return device


def orm_model_fields_save(instance, fields: tuple[str, ...]) -> None:
    instance.save(update_fields=list(fields))


def orm_retained_digest_store(*, topic: str, digest: str, now, presence: bool = False) -> None:
    from devices.models import RetainedMessage

    defaults = {"digest": digest, "applied_at": now, **({"presence_digest": digest} if presence else {})}
    RetainedMessage.objects.update_or_create(topic=topic, defaults=defaults)


def swapped(pieces: tuple[str, ...]):
    """Replace the named pieces by their ORM versions for the duration."""
    from devices.services import changes, pumps
    from realtime.bridge import ingest

    targets = {"lock": (changes, "_device_with_session", orm_device_with_session),
               "seen": (pumps, "model_fields_save", orm_model_fields_save),
               "digest": (ingest, "retained_digest_store", orm_retained_digest_store)}  # fmt: skip
    return pieces_swapped(targets, pieces)


class Statuses:
    """One pump's statuses from one boot, `seq` going on across the whole run (none is a duplicate)."""

    def __init__(self) -> None:
        self.seq = 0

    def take(self, count: int) -> list:
        from realtime.bridge.ingest import InboundMessage

        messages = []
        for _ in range(count):
            self.seq += 1
            payload = f'{{"status":"testing","seq":{self.seq},"bootId":"bench","timestamp":{self.seq}}}'.encode()
            messages.append(InboundMessage(topic="devices/PUMP_0000/status", mid=self.seq % 65535 + 1,
                                           payload=payload))  # fmt: skip
        return messages


def run(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    """{variant: [(CPU ms a status, wall ms a status) per round]}."""
    from realtime.bridge.worker import Bridge
    from tests.factories import make_device

    make_device("PUMP_0000")
    bridge = Bridge(name="bench-status-fastpath")
    statuses = Statuses()
    for variant in VARIANTS:  # warm-up: every variant's code compiled and cached once
        with swapped(PIECES.get(variant, ())):
            drive(bridge, statuses.take(50), args.window)
    results: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            messages = statuses.take(args.messages)
            with swapped(PIECES.get(variant, ())):
                started, cpu = time.perf_counter(), time.process_time()
                drive(bridge, messages, args.window)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            results[variant].append((1000 * cpu / args.messages, 1000 * wall / args.messages))
    return results


def report(database: str, results: dict[str, list[tuple[float, float]]]) -> None:
    fast = results["fast"]
    print(f"{database}: ms a status, median [min-max]; ratio to fast, per round")
    for variant, rounds in results.items():
        cpu = [one[0] for one in rounds]
        ratios = [one[0] / base[0] for one, base in zip(rounds, fast, strict=True)]
        walls = [one[1] / base[1] for one, base in zip(rounds, fast, strict=True)]
        print(f"  {variant:7s} CPU {statistics.median(cpu):.2f} [{min(cpu):.2f}-{max(cpu):.2f}]"
              f"  x{min(ratios):.2f}-{max(ratios):.2f}  wall x{min(walls):.2f}-{max(walls):.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=1000, help="unacknowledged messages the broker hands out")
    args = parser.parse_args()
    with configured(args.database):
        report(args.database, run(args))


if __name__ == "__main__":
    main()
