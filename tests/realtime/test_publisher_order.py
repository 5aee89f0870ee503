"""The publisher on PostgreSQL, where ids are taken before commit: a row whose lower id commits later is published.

Two pumps' transactions: the first takes its change-log id, the second takes a higher one and commits first, the
publisher reads past both ids, then the first commits. Reading only `id > position` passed over it for good.
"""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from devices.models import ChangeLogEntry
from devices.services.changes import change_record, device_lock
from protocol import events
from protocol.events import DeviceChange
from realtime import publisher as publisher_module
from realtime.fanout import FanOut
from realtime.publisher import ChangePublisher
from tests.factories import make_device
from tests.support.changes import changes_commit, typed_body

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite admits one writer: its ids commit in order"),
]


PROGRESS = events.DEVICE_PROGRESS, {"progress": {"n": 1}}


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "the publisher never published"
        await asyncio.sleep(0.01)


def publish_with(scenario) -> list[DeviceChange]:
    """Run `scenario(publisher)` against a started publisher (woken only by the test); what it published."""
    delivered: list[DeviceChange] = []

    async def main() -> None:
        fanout = FanOut()
        fanout.release_listeners.append(delivered.append)
        publisher = ChangePublisher(fanout, poll_s=60.0)
        await publisher.ready()
        await scenario(publisher)

    asyncio.run(main())
    return delivered


class HeldTransaction(threading.Thread):
    """A change of `device_id` recorded in a transaction of its own connection, committed only on `release`."""

    def __init__(self, device_id: str, *, roll_back: bool = False) -> None:
        super().__init__(daemon=True)
        self.device_id = device_id
        self.roll_back = roll_back
        self.entry_id: int | None = None  # the change-log id its change took
        self.inserted = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                device = device_lock(device_id=self.device_id)
                change_record(device=device, event=PROGRESS[0], body=typed_body(device, *PROGRESS))
                self.entry_id = ChangeLogEntry.objects.filter(device=device).latest("id").id
                self.inserted.set()
                assert self.release.wait(10), "the test never released the transaction"
                transaction.set_rollback(self.roll_back)
        finally:
            connection.close()

    async def begin(self) -> None:
        """Start it and wait until its change is inserted (its id taken, uncommitted)."""
        self.start()
        assert await asyncio.to_thread(self.inserted.wait, 10), "the held transaction never inserted"

    async def end(self) -> None:
        """Commit (or roll back) and wait until it has."""
        self.release.set()
        await asyncio.to_thread(self.join, 10)


@pytest.fixture
def quick_settling(monkeypatch):
    """Gaps asked about after 0.2 s, every 0.05 s: a transaction open for a second outlasts many questions."""
    monkeypatch.setattr(publisher_module, "GAP_SETTLE_S", 0.2)
    monkeypatch.setattr(publisher_module, "SETTLE_EVERY_S", 0.05)


async def read_for(publisher: ChangePublisher, seconds: float, until_true=lambda: False) -> None:
    """Read the log again and again (gaps looked up, questions asked) for `seconds` or until `until_true()`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline and not until_true():
        await publisher.catch_up()
        await asyncio.sleep(0.02)


def test_a_change_whose_lower_id_commits_after_a_higher_one_is_still_published():
    make_device("A")
    make_device("B")
    held = HeldTransaction("A")

    async def scenario(publisher: ChangePublisher) -> None:
        held.start()
        assert await asyncio.to_thread(held.inserted.wait, 10), "the held transaction never inserted"
        await sync_to_async(changes_commit)("B", [PROGRESS])  # a higher id, committed first
        publisher.wake()
        await until(lambda: publisher.published == 1)
        held.release.set()
        await asyncio.to_thread(held.join, 10)
        ids = await sync_to_async(lambda: dict(ChangeLogEntry.objects.values_list("device__device_id", "id")))()
        assert ids["A"] < ids["B"], f"the held change must have the lower id: {ids}"
        publisher.wake()
        await until(lambda: publisher.published == 2, timeout=3.0)
        assert publisher.late == 1

    delivered = publish_with(scenario)
    assert [(c.device_id, c.seq) for c in delivered] == [("B", 1), ("A", 1)]


def test_a_passed_over_change_that_commits_between_the_publishers_two_reads_goes_out_before_the_next(monkeypatch):
    """The pump's first change (a gap) commits and its second one follows just before the read past the position.

    Gaps looked up before that read missed the first; the read found the second, published first, and the first,
    found at the next wake, was dropped as already published: a subscriber on any Daphne missed that `seq` for
    good (seen with two bridges and a page on B: `tests/integration/scaleout/test_consistency_across_processes.py`).
    """
    make_device("A")
    make_device("B")
    held = HeldTransaction("A")
    armed = threading.Event()
    read_after = publisher_module.change_log_after

    def commits_then_reads(**kwargs):
        if armed.is_set():
            armed.clear()
            held.release.set()
            held.join(10)
            changes_commit("A", [PROGRESS])  # the pump's next change: its id is above the position
        return read_after(**kwargs)

    monkeypatch.setattr(publisher_module, "change_log_after", commits_then_reads)

    async def scenario(publisher: ChangePublisher) -> None:
        held.start()
        assert await asyncio.to_thread(held.inserted.wait, 10), "the held transaction never inserted"
        await sync_to_async(changes_commit)("B", [PROGRESS])  # a higher id, committed first: A's is passed over
        publisher.wake()
        await until(lambda: publisher.published == 1)
        armed.set()
        await publisher.catch_up()  # read directly, not woken: a wake racing the end leaves a task that never ends
        await publisher.catch_up()  # the next read: a gap that filled late is published then, if not already

    delivered = publish_with(scenario)
    assert [(c.device_id, c.seq) for c in delivered] == [("B", 1), ("A", 1), ("A", 2)]


def test_a_change_committed_long_after_its_id_was_passed_over_is_published_and_a_rolled_back_id_is_forgotten(
    quick_settling,
):
    """Review 38: an id was forgotten 30 s after it was passed over, though a transaction may stay open longer (a
    bridge paused mid-batch, `idle_in_transaction_session_timeout` 60 s): a high alarm committed then reached no
    screen. Now a gap is kept while a transaction that could fill it is open, and forgotten once none is."""
    make_device("A")
    make_device("B")
    make_device("C")
    rolled_back, held = HeldTransaction("C", roll_back=True), HeldTransaction("A")

    async def scenario(publisher: ChangePublisher) -> None:
        await rolled_back.begin()
        await sync_to_async(changes_commit)("B", [PROGRESS])  # a higher id, committed first: C's passed over
        publisher.wake()
        await until(lambda: publisher.published == 1)
        await rolled_back.end()
        await read_for(publisher, 5.0, until_true=lambda: rolled_back.entry_id not in publisher._gaps)
        assert rolled_back.entry_id not in publisher._gaps, "the rolled-back transaction's id was never forgotten"
        await held.begin()
        await sync_to_async(changes_commit)("B", [PROGRESS])  # A's id passed over in turn
        publisher.wake()
        await until(lambda: publisher.published == 2)
        await read_for(publisher, 1.0)  # five times GAP_SETTLE_S, twenty questions, A's transaction still open
        assert held.entry_id in publisher._gaps, "the open transaction's id was forgotten"
        await held.end()
        await read_for(publisher, 3.0, until_true=lambda: publisher.late == 1)

    delivered = publish_with(scenario)
    assert [(c.device_id, c.seq) for c in delivered] == [("B", 1), ("B", 2), ("A", 1)]


def test_ids_passed_over_beyond_the_bound_are_read_as_a_range_and_published_when_they_commit(
    quick_settling, monkeypatch
):
    """Over `GAPS_MAX` the oldest gaps were forgotten at once (the alarm of a transaction still open lost with
    them); now they are read as one range, each pump's rows already published skipped by `seq`."""
    monkeypatch.setattr(publisher_module, "GAPS_MAX", 1)
    make_device("A")
    make_device("B")
    make_device("C")
    first, second = HeldTransaction("A"), HeldTransaction("C")

    async def scenario(publisher: ChangePublisher) -> None:
        await first.begin()
        await second.begin()
        await sync_to_async(changes_commit)("B", [PROGRESS])  # a higher id: two gaps, one over the bound
        publisher.wake()
        await until(lambda: publisher.published == 1)
        assert publisher.given_up >= 1 and first.entry_id not in publisher._gaps, "the older gap was not given up"
        await read_for(publisher, 0.5)  # questions asked, the range read, both transactions open
        await first.end()
        await read_for(publisher, 3.0, until_true=lambda: publisher.late == 1)
        await sync_to_async(changes_commit)("A", [PROGRESS])  # read past the position; seq 1 is not re-published
        await second.end()
        await read_for(publisher, 3.0, until_true=lambda: publisher.late == 2)
        await read_for(publisher, 0.5)

    delivered = [(c.device_id, c.seq) for c in publish_with(scenario)]
    assert delivered[:2] == [("B", 1), ("A", 1)]
    assert sorted(delivered[2:]) == [("A", 2), ("C", 1)]  # C's gap row, found after the read of A's 2, goes first
