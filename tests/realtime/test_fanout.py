"""The fan-out: per-pump seq order across racing sources, gap give-up, snapshot subscribers skipped."""

import asyncio

from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import FanOut


def change(seq: int, device_id: str = "PUMP_0001") -> DeviceChange:
    return DeviceChange(device_id, seq, events.DEVICE_PROGRESS, {"progress": {"n": seq}}, "icu")


def run_fanout(scenario, *, window: float = 0.2) -> list[tuple[str, int, frozenset]]:
    delivered: list[tuple[str, int, frozenset]] = []

    async def target(item: DeviceChange, skip: frozenset[str]) -> None:
        delivered.append((item.device_id, item.seq, skip))

    async def main() -> None:
        fanout = FanOut(reorder_window_s=window)
        fanout.targets.append(target)
        await scenario(fanout)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    return delivered


def test_changes_arriving_out_of_order_are_released_in_seq_order():
    async def scenario(fanout: FanOut) -> None:
        fanout.note_snapshot("PUMP_0001", 4)
        for seq in (5, 7, 8, 6, 9):
            fanout.publish(change(seq))

    assert [seq for _, seq, _ in run_fanout(scenario)] == [5, 6, 7, 8, 9]


def test_duplicates_and_old_changes_are_dropped():
    async def scenario(fanout: FanOut) -> None:
        for seq in (1, 2, 2, 1, 3):
            fanout.publish(change(seq))

    assert [seq for _, seq, _ in run_fanout(scenario)] == [1, 2, 3]


def test_a_gap_that_never_fills_is_given_up_after_the_window():
    async def scenario(fanout: FanOut) -> None:
        fanout.publish(change(1))
        fanout.publish(change(3))
        fanout.publish(change(4))
        await asyncio.sleep(0.05)
        assert fanout.last_published("PUMP_0001") == 1, "held while the window lasts"
        await asyncio.sleep(0.25)

    assert [seq for _, seq, _ in run_fanout(scenario, window=0.1)] == [1, 3, 4]


def test_pumps_do_not_wait_for_each_other():
    async def scenario(fanout: FanOut) -> None:
        fanout.publish(change(1, "A"))
        fanout.publish(change(3, "A"))  # A waits for 2
        fanout.publish(change(1, "B"))
        fanout.publish(change(2, "B"))
        await asyncio.sleep(0.02)
        fanout.publish(change(2, "A"))

    delivered = run_fanout(scenario)
    assert [(d, s) for d, s, _ in delivered] == [("A", 1), ("B", 1), ("B", 2), ("A", 2), ("A", 3)]


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


def test_a_pump_registered_anew_restarts_its_seq():
    async def scenario(fanout: FanOut) -> None:
        for seq in (1, 2, 3):
            fanout.publish(change(seq))
        await asyncio.sleep(0.01)
        fanout.note_snapshot("PUMP_0001", 0, "subscriber")  # deleted and re-created: the database says 0
        fanout.publish(change(1))
        fanout.publish(change(2))

    assert [seq for _, seq, _ in run_fanout(scenario)] == [1, 2, 3, 1, 2]


def test_a_pump_registered_anew_restarts_its_seq_without_any_snapshot():
    """Only ward feeds watch it (no monitor page subscribed): its new row's changes must not be dropped as old."""

    def again(seq: int, registration: int) -> DeviceChange:
        return DeviceChange("PUMP_0001", seq, events.DEVICE_STATUS, {"status": {"n": seq}}, "icu", registration)

    async def scenario(fanout: FanOut) -> None:
        for seq in (1, 2, 3):
            fanout.publish(again(seq, registration=7))
        await asyncio.sleep(0.01)
        fanout.publish(again(1, registration=8))  # deleted and registered anew: a new row
        fanout.publish(again(2, registration=8))
        fanout.publish(again(2, registration=8))  # still a duplicate within one registration

    assert [seq for _, seq, _ in run_fanout(scenario)] == [1, 2, 3, 1, 2]


def test_a_change_arriving_after_its_gap_was_given_up_is_counted_not_delivered():
    fanouts = []

    async def scenario(fanout: FanOut) -> None:
        fanouts.append(fanout)
        fanout.publish(change(1))
        fanout.publish(change(3))
        await asyncio.sleep(0.15)
        fanout.publish(change(2))  # too late: its subscribers already saw the gap and resynchronise
        fanout.publish(change(3))  # a plain duplicate is not late

    assert [seq for _, seq, _ in run_fanout(scenario, window=0.1)] == [1, 3]
    assert (fanouts[0].gaps, fanouts[0].late) == (1, 1)
