"""The fan-out: delivery in the order published (the publisher's), snapshot subscribers skipped, the pump lock."""

import asyncio

from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import FanOut


def change(seq: int, device_id: str = "PUMP_0001") -> DeviceChange:
    return DeviceChange(device_id, seq, events.DEVICE_PROGRESS, {"progress": {"n": seq}}, "icu")


def run_fanout(scenario) -> list[tuple[str, int, frozenset]]:
    delivered: list[tuple[str, int, frozenset]] = []

    async def target(item: DeviceChange, skip: frozenset[str]) -> None:
        delivered.append((item.device_id, item.seq, skip))

    async def main() -> None:
        fanout = FanOut()
        fanout.targets.append(target)
        await scenario(fanout)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    return delivered


def test_changes_are_delivered_in_the_order_published_per_pump():
    async def scenario(fanout: FanOut) -> None:
        for seq in (1, 2, 3):
            fanout.publish(change(seq, "A"))
            fanout.publish(change(seq, "B"))

    delivered = run_fanout(scenario)
    assert [seq for device, seq, _ in delivered if device == "A"] == [1, 2, 3]
    assert [seq for device, seq, _ in delivered if device == "B"] == [1, 2, 3]


def test_subscriber_whose_snapshot_holds_a_change_is_skipped_for_it_only():
    async def scenario(fanout: FanOut) -> None:
        fanout.publish(change(1))  # still queued when the snapshot at seq 3 is noted
        fanout.note_snapshot("PUMP_0001", 3, "late-subscriber")
        fanout.publish(change(2))
        fanout.publish(change(3))
        fanout.publish(change(4))

    delivered = run_fanout(scenario)
    assert [(seq, sorted(skip)) for _, seq, skip in delivered] == [
        (1, ["late-subscriber"]), (2, ["late-subscriber"]), (3, ["late-subscriber"]), (4, [])]  # fmt: skip


def test_delivery_waits_for_a_snapshot_holding_the_pump_lock():
    order: list[str] = []

    async def scenario(fanout: FanOut) -> None:
        fanout.targets.append(lambda item, skip: _record(order, f"change {item.seq}"))
        async with fanout.pump_lock("PUMP_0001"):
            fanout.publish(change(1))
            await asyncio.sleep(0.02)
            order.append("snapshot sent")

    run_fanout(scenario)
    assert order == ["snapshot sent", "change 1"]


async def _record(order: list[str], item: str) -> None:
    order.append(item)


def test_a_failing_target_does_not_stop_the_others():
    async def failing(item: DeviceChange, skip: frozenset[str]) -> None:
        raise RuntimeError("boom")

    async def scenario(fanout: FanOut) -> None:
        fanout.targets.insert(0, failing)
        fanout.publish(change(1))
        fanout.publish(change(2))

    assert [seq for _, seq, _ in run_fanout(scenario)] == [1, 2]


def test_a_snapshot_of_a_pump_row_deleted_since_does_not_hide_the_new_rows_changes():
    """A pump deleted and registered anew counts `seq` from 0 again: a snapshot of the old row skips nothing new."""

    def again(seq: int, registration: int) -> DeviceChange:
        return DeviceChange("PUMP_0001", seq, events.DEVICE_STATUS, {"status": {"n": seq}}, "icu", registration)

    async def scenario(fanout: FanOut) -> None:
        fanout.note_snapshot("PUMP_0001", 3, "old-row", registration=7)
        fanout.note_snapshot("PUMP_0001", 1, "new-row", registration=8)
        fanout.publish(again(1, registration=8))
        fanout.publish(again(2, registration=8))

    delivered = run_fanout(scenario)
    assert [(seq, sorted(skip)) for _, seq, skip in delivered] == [(1, ["new-row"]), (2, [])]


def test_a_snapshot_read_off_the_lock_is_completed_by_the_changes_delivered_meanwhile():
    """While a snapshot is pending, what the pump delivers is kept: a stale snapshot plus those equals a fresh one."""

    def progress(seq: int, registration: int = 7) -> DeviceChange:
        return DeviceChange("PUMP_0001", seq, events.DEVICE_PROGRESS, {"n": seq}, "icu", registration)

    async def scenario(fanout: FanOut) -> None:
        assert fanout.delivered_since("PUMP_0001", 0, registration=7) == []
        fanout.publish(progress(4))
        await asyncio.sleep(0.01)
        fanout.snapshot_pending("PUMP_0001")  # a subscriber asks; its read will hold seq 4 or later
        fanout.publish(progress(5))
        fanout.publish(progress(6))
        await asyncio.sleep(0.01)
        assert [c.seq for c in fanout.delivered_since("PUMP_0001", 4, registration=7)] == [5, 6]
        assert [c.seq for c in fanout.delivered_since("PUMP_0001", 5, registration=7)] == [6]
        assert fanout.delivered_since("PUMP_0001", 6, registration=7) == []
        assert fanout.delivered_since("PUMP_0001", 3, registration=7) is None, "seq 4 went out before it was kept"
        assert fanout.delivered_since("PUMP_0001", 0, registration=8) == [], "registered anew: a newer row"
        assert fanout.delivered_since("PUMP_0001", 9, registration=6) is None, "a snapshot of an older row"
        fanout.snapshot_done("PUMP_0001")
        assert fanout.delivered_since("PUMP_0001", 4, registration=7) is None, "nothing kept once none is pending"

    run_fanout(scenario)


def test_the_backlog_counts_changes_not_yet_delivered_and_the_oldest_ones_wait():
    """A target that never returns stops its pump's deliveries (its lock held): the metric shows it growing."""
    seen: list[tuple[int, float]] = []

    async def main() -> None:
        fanout = FanOut()
        stuck = asyncio.Event()

        async def target(item: DeviceChange, skip: frozenset[str]) -> None:
            if item.device_id == "STUCK":
                await stuck.wait()

        fanout.targets.append(target)
        seen.append(fanout.backlog())
        for seq in (1, 2, 3):
            fanout.publish(change(seq, "STUCK"))
            fanout.publish(change(seq, "FINE"))
        await asyncio.sleep(0.05)
        seen.append(fanout.backlog())  # STUCK's first is being delivered (counted until it is): 3 undelivered
        stuck.set()
        await asyncio.sleep(0.01)
        seen.append(fanout.backlog())

    asyncio.run(main())
    (empty, empty_age), (queued, age), (after, after_age) = seen
    assert (empty, empty_age, after, after_age) == (0, 0.0, 0, 0.0)
    assert queued == 3 and age >= 0.05
