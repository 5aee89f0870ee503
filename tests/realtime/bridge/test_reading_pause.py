"""The broker links pause their reading while a calm pump's alarm commits (`link.ReadingPause`, `Bridge.commit`):
under another pump's flood the link's thread reading the backlog halved that commit's speed (bench/README.md)."""

import threading
import time

import pytest

from realtime.bridge import worker
from realtime.bridge.budgets import Budget
from realtime.bridge.fair import holds_calm_alarm
from realtime.bridge.link import ReadingPause
from tests.realtime.bridge.test_fair import error, fair_queue, status

pytestmark = pytest.mark.django_db


def reader(reading: ReadingPause) -> tuple[threading.Thread, list[float]]:
    """A link's thread about to read, started now, and (once it has) how long it waited."""
    took: list[float] = []

    def read() -> None:
        started = time.monotonic()
        reading.wait()
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=read)
    thread.start()
    return thread, took


def test_a_link_reads_at_once_unless_a_commit_pauses_it_and_then_as_soon_as_the_commit_ends():
    reading = ReadingPause()
    thread, took = reader(reading)
    thread.join(timeout=1)
    assert took and took[0] < 0.05, "nothing paused: the link must read at once"
    with reading.during(at_most_s=5):
        thread, took = reader(reading)
        time.sleep(0.2)
        assert not took, "the link read while a commit paused the reading"
    thread.join(timeout=1)
    assert took and 0.15 < took[0] < 1, f"the link must read again once the commit ended: {took}"


def test_a_pause_never_outlasts_its_bound_whatever_the_commit_does():
    reading = ReadingPause()
    with reading.during(at_most_s=0.1):
        thread, took = reader(reading)
        thread.join(timeout=2)
        assert took and took[0] < 0.5, f"a stuck commit (a locked database) kept the link from reading: {took}"
        thread, took = reader(reading)
        thread.join(timeout=1)
        assert took and took[0] < 0.05, "past its bound the link reads at once"


def test_only_a_calm_pumps_admitted_alarm_pauses_the_reading():
    alarm, report = error("CALM", 1), status("CALM", 2)
    alarm.shed = report.shed = ""
    assert holds_calm_alarm([report, alarm], frozenset())
    assert not holds_calm_alarm([report], frozenset()), "a report is no alarm"
    assert not holds_calm_alarm([alarm], frozenset({"CALM"})), "a flooding pump's share would slow its own reading"
    alarm.shed = "budget"
    assert not holds_calm_alarm([alarm], frozenset()), "a shed alarm applies nothing"


def test_the_bridge_pauses_the_reading_while_it_commits_the_calm_pumps_alarm_not_the_floods_batches():
    bridge = worker.Bridge()
    bridge.waiting = fair_queue(alarm=Budget(1, 3))
    paused: list[tuple[list[str], bool]] = []
    bridge.committer.commit = lambda batch: paused.append(
        (sorted({m.topic.split("/")[1] for m in batch}), bridge.link.reading.paused)
    )
    bridge.waiting.add([*(error("FLOOD", n) for n in range(30)), error("CALM", 99)])
    for batch in bridge.waiting.take(max_messages=500):
        bridge.commit(batch)
    assert paused == [(["CALM"], True), (["FLOOD"], False), (["FLOOD"], False)], paused
    assert not bridge.link.reading.paused, "the reading must resume after the commit"
