"""Ways a published change of a pump could stop reaching its subscribers for good (review 10), each closed.

1. A target (or delivered listener) that raises a BaseException (asyncio.CancelledError: a cancelled future it
   awaited, an executor shut down under `sync_to_async`) escapes `_deliver`'s `except Exception`; `_drain` ends
   without `self._draining.discard(device_id)`, so every later `publish` of that pump appends to a queue no task
   drains. The lock is released (the `async with`), so new subscribers still get `stream:subscribed` and the
   snapshot, then nothing: the screens say live.
2. The publisher's `_last_seq` is keyed by the pump's row id and never forgotten: when row ids are handed out
   again (SQLite's AUTOINCREMENT after a migration rebuilt devices_device, see test_ids_restart_below_publisher.py),
   a new pump's first changes (seq 1, 2, ...) are dropped as "already published".
"""

import asyncio
from datetime import UTC, datetime

from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import FanOut
from realtime.publisher import ChangePublisher


def change(seq: int, device_id: str = "CALM", registration: int | None = 7) -> DeviceChange:
    return DeviceChange(device_id, seq, events.DEVICE_ALARM, {"alarm": {"type": f"t{seq}"}}, "icu", registration)


def test_a_target_raising_cancelled_error_once_does_not_stop_the_pumps_later_changes():
    delivered: list[tuple[str, int]] = []
    backlog: list[tuple[int, float]] = []

    async def target(item: DeviceChange, skip: frozenset[str]) -> None:
        if (item.device_id, item.seq) == ("CALM", 1):
            raise asyncio.CancelledError  # e.g. the future it awaited was cancelled, not the drain task itself
        delivered.append((item.device_id, item.seq))

    async def main() -> None:
        fanout = FanOut()
        fanout.targets.append(target)
        fanout.publish(change(1))
        await asyncio.sleep(0.01)
        fanout.publish(change(2))
        fanout.publish(change(1, device_id="OTHER"))
        await asyncio.sleep(0.05)
        backlog.append(fanout.backlog())

    asyncio.run(main())
    assert ("OTHER", 1) in delivered, "another pump's change flows"
    assert ("CALM", 2) in delivered, (
        f"CALM's change 2 never delivered after its change 1's target raised CancelledError: delivered {delivered}, "
        f"fan-out backlog (queued, oldest s) {backlog}"
    )


def test_a_delivered_listener_raising_cancelled_error_does_not_stop_the_pump():
    delivered: list[int] = []

    async def target(item: DeviceChange, skip: frozenset[str]) -> None:
        delivered.append(item.seq)

    async def listener(item: DeviceChange) -> None:
        if item.seq == 1:
            raise asyncio.CancelledError

    async def main() -> None:
        fanout = FanOut()
        fanout.targets.append(target)
        fanout.delivered_listeners.append(listener)
        fanout.publish(change(1))
        await asyncio.sleep(0.01)
        fanout.publish(change(2))
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert delivered == [1, 2], f"the pump's stream stopped after a listener's CancelledError: {delivered}"


def test_a_new_pump_under_a_reused_row_id_has_its_first_changes_published(settings):
    """`_last_seq` of an old pump (row 7, seq up to 40) must not swallow a new pump's seq 1.. under the same row id."""
    published: list[tuple[str, int]] = []
    now = datetime.now(UTC)

    async def main() -> None:
        fanout = FanOut()
        fanout.release_listeners.append(lambda item: published.append((item.device_id, item.seq)))
        publisher = ChangePublisher(fanout, poll_s=60.0)
        publisher.position = 0
        publisher._publish([(n, 7, "CALM", n, events.DEVICE_STATUS, {}, "icu", now) for n in range(1, 41)], now)
        # the table flushed, its AUTOINCREMENT restarted, a new pump registered: row id 7 again, seq from 1
        publisher._publish([(41 + n, 7, "CALM", n, events.DEVICE_ALARM, {}, "icu", now) for n in range(1, 4)], now)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert published[-3:] == [("CALM", 1), ("CALM", 2), ("CALM", 3)], (
        f"the new pump's changes were dropped as already published: last published {published[-3:]}"
    )


def test_a_delivery_that_never_returns_shows_in_the_backlog_even_when_nothing_follows_it():
    """7d56e9d's metric: the change being delivered is popped before its delivery, so a pump whose one (last) change
    hangs in a target shows 0 queued and 0.0 s: PumpStreamDeliveriesStalled cannot fire until another change of
    that pump arrives (a quiet pump's alarm, then nothing)."""
    backlog: list[tuple[int, float]] = []

    async def target(item: DeviceChange, skip: frozenset[str]) -> None:
        await asyncio.Event().wait()  # never returns

    async def main() -> None:
        fanout = FanOut()
        fanout.targets.append(target)
        fanout.publish(change(1))
        await asyncio.sleep(0.2)
        backlog.append(fanout.backlog())

    asyncio.run(main())
    queued, oldest_s = backlog[0]
    assert queued >= 1 and oldest_s >= 0.1, f"a hung delivery is invisible to the backlog metric: {backlog[0]}"
