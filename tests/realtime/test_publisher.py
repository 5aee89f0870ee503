"""The publisher: the change log in commit order to the fan-out, woken or by its poll, from its position; pruning."""

import asyncio
import sqlite3
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from devices.changelog_selectors import change_log_after
from devices.logreader import SqliteLogReader
from devices.models import ChangeLogEntry
from devices.services.changelog import change_log_listen, change_log_prune, change_log_unlisten
from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import FanOut
from realtime.publisher import ChangePublisher
from tests.factories import make_device, make_ward
from tests.support.changes import changes_commit

pytestmark = pytest.mark.django_db(transaction=True)

NEVER_S = 60.0  # a poll interval the test never waits for: only wakes can make the publisher read


@pytest.fixture(autouse=True, params=[True, False], ids=["read-on-loop", "read-through-orm"])
def read_on_loop(request, settings) -> bool:
    """Every test with both readers: SQLite's on the loop (devices/logreader.py) and the ORM on a thread."""
    if request.param and connection.vendor != "sqlite":
        pytest.skip("the loop reader is SQLite's; other engines read through the ORM")
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "PUBLISHER_READ_ON_LOOP": request.param}
    return request.param


def progress(n: int) -> tuple[str, dict]:
    return events.DEVICE_PROGRESS, {"progress": {"n": n}}


commit = sync_to_async(changes_commit)


def publish_with(scenario, *, poll_s: float = NEVER_S, read_limit: int = 2_000) -> list[DeviceChange]:
    """Run `scenario(publisher)` against a started publisher; returns what it handed to the fan-out, in order."""
    delivered: list[DeviceChange] = []

    async def main() -> None:
        fanout = FanOut()
        fanout.release_listeners.append(delivered.append)
        publisher = ChangePublisher(fanout, poll_s=poll_s, read_limit=read_limit)
        await publisher.ready()
        on_loop = settings.PUMPSTREAM["PUBLISHER_READ_ON_LOOP"]
        assert (publisher._loop_reader is not None) == on_loop, "the reader the setting asks for"
        await scenario(publisher)

    asyncio.run(main())
    return delivered


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "the publisher never published"
        await asyncio.sleep(0.01)


def test_changes_committed_before_the_start_are_not_replayed_and_later_ones_arrive_in_commit_order():
    ward = make_ward("icu")
    make_device("A", ward=ward)
    make_device("B", ward=ward)
    changes_commit("A", [progress(0)])  # before the publisher: a snapshot holds it

    async def scenario(publisher: ChangePublisher) -> None:
        await commit("A", [progress(1), progress(2)])
        await commit("B", [progress(1)])
        await commit("A", [progress(3)])
        publisher.wake()
        await until(lambda: publisher.published == 4)

    delivered = publish_with(scenario)
    assert [(c.device_id, c.seq) for c in delivered] == [("A", 2), ("A", 3), ("B", 1), ("A", 4)]
    assert delivered[0].body["progress"]["n"] == 1 and delivered[0].ward_code == "icu"


def test_a_commit_in_this_process_wakes_the_publisher_at_once():
    make_device("A")

    async def scenario(publisher: ChangePublisher) -> None:
        change_log_listen(publisher.wake)
        try:
            await commit("A", [progress(1)])
            await until(lambda: publisher.published == 1, timeout=2.0)  # far below the poll's NEVER_S
        finally:
            change_log_unlisten(publisher.wake)

    assert [c.seq for c in publish_with(scenario)] == [1]


def test_a_missed_wake_is_caught_up_by_the_poll_in_order():
    make_device("A")

    async def scenario(publisher: ChangePublisher) -> None:
        for n in range(1, 6):
            await commit("A", [progress(n)])  # nobody wakes the publisher
        await until(lambda: publisher.published == 5)

    assert [c.seq for c in publish_with(scenario, poll_s=0.1)] == [1, 2, 3, 4, 5]


def test_a_backlog_larger_than_one_read_is_published_whole_and_in_order():
    make_device("A")

    async def scenario(publisher: ChangePublisher) -> None:
        await commit("A", [progress(n) for n in range(25)])
        publisher.wake()
        await until(lambda: publisher.published == 25)

    assert [c.seq for c in publish_with(scenario, read_limit=10)] == list(range(1, 26))


def test_a_failed_read_is_retried_and_nothing_is_lost(monkeypatch, read_on_loop):
    make_device("A")
    import realtime.publisher as module

    failures = iter([True])
    if read_on_loop:  # SQLite busy on the loop's own connection: read again shortly, not at the next poll
        real_after = SqliteLogReader.after

        def flaky_after(self, **kwargs):
            if next(failures, False):
                raise sqlite3.OperationalError("database is locked")
            return real_after(self, **kwargs)

        monkeypatch.setattr(SqliteLogReader, "after", flaky_after)
    else:
        real = module.change_log_after

        def flaky(**kwargs):
            if next(failures, False):
                from django.db import OperationalError

                raise OperationalError("database is locked")
            return real(**kwargs)

        monkeypatch.setattr(module, "change_log_after", flaky)

    async def scenario(publisher: ChangePublisher) -> None:
        await commit("A", [progress(1), progress(2)])
        publisher.wake()  # this read fails; a retry 10 ms later (loop; never the 60 s poll) or the poll (ORM)
        await until(lambda: publisher.published == 2, timeout=5.0)

    assert [c.seq for c in publish_with(scenario, poll_s=0.1 if not read_on_loop else NEVER_S)] == [1, 2]
    assert next(failures, None) is None, "the read failed once"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the loop reader is SQLite's")
def test_the_loop_reader_reads_what_the_orm_selector_reads():
    ward = make_ward("icu")
    make_device("A", ward=ward)
    make_device("B")
    alarm = {"alarm": {"message": "Okklusion \u2013 ü", "type": "Okklusion ü"}}  # text beyond ASCII
    listed = (events.DEVICE_PROGRESS, {"progress": {"n": [1, 2]}})  # a pump's own field passes through as sent
    changes_commit("A", [progress(1), (events.DEVICE_ALARM, alarm), listed])
    changes_commit("B", [progress(2)])
    reader = SqliteLogReader.for_default_database()
    assert reader is not None, "the tests' database is an SQLite file"
    try:
        assert reader.after(after_id=0, limit=10) == change_log_after(after_id=0, limit=10)
        assert reader.after(after_id=0, limit=2) == change_log_after(after_id=0, limit=2)
        first = change_log_after(after_id=0, limit=1)[0][0]
        assert reader.after(after_id=first, limit=10) == change_log_after(after_id=first, limit=10)
    finally:
        reader.close()


def test_pruning_deletes_only_entries_older_than_the_cutoff_a_chunk_at_a_time():
    make_device("A")
    changes_commit("A", [progress(n) for n in range(10)])
    old = timezone.now() - timedelta(minutes=10)
    ChangeLogEntry.objects.filter(seq__lte=7).update(created_at=old)
    cutoff = timezone.now() - timedelta(minutes=5)
    assert change_log_prune(before=cutoff, limit=5) == 5, "one chunk per call"
    assert change_log_prune(before=cutoff, limit=5) == 2
    assert change_log_prune(before=cutoff, limit=5) == 0
    assert list(ChangeLogEntry.objects.order_by("seq").values_list("seq", flat=True)) == [8, 9, 10]


def test_a_publisher_behind_pruned_entries_goes_on_from_the_next_one():
    make_device("A")

    async def scenario(publisher: ChangePublisher) -> None:
        await commit("A", [progress(1)])
        publisher.wake()
        await until(lambda: publisher.published == 1)
        await commit("A", [progress(n) for n in range(2, 6)])
        await sync_to_async(ChangeLogEntry.objects.filter(seq__in=(2, 3)).delete)()  # pruned before it was read
        publisher.wake()
        await until(lambda: publisher.published == 3)
        assert publisher.skipped == 2

    assert [c.seq for c in publish_with(scenario)] == [1, 4, 5]
