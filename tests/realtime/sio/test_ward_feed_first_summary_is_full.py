"""A station's first `ward:summary` after (re)subscribing is the full one, and no change is lost around it.

`live.js` takes a ward feed as received again at its subscription's full summary. `WardFeed.subscribe` listed the
station among the subscribers before its own read of the ward, so a tick whose read of the pumps changed in the last
second was under way then sent it those pumps' summary first, `full` false: its other pumps, an occlusion raised on
one during the loss, read "Online" and "Idle" again as before the loss until the full summary came (review 39,
finding 3, review 37 finding 4's lie). The feed now passes a subscription by in its ticks until its full summary is
sent, and its full read and a tick's read take turns: a change after the full read still reaches the station in the
next tick, never dropped because the tick ran while the full summary was on its way.
"""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from protocol import events
from realtime.sio import ward_feed as ward_feed_module
from realtime.sio.ward_feed import WardFeed, WardScope
from tests.factories import make_device, make_ward, raise_high_alarm

pytestmark = pytest.mark.django_db(transaction=True)


async def _ignored(event: str, body: dict) -> None:
    return None


def _last_state_of(received: list[dict], device_id: str) -> dict:
    """The pump as the station last read it: the last summary listing it."""
    listed = [pump for body in received for pump in body.get("pumps", []) if pump["deviceId"] == device_id]
    assert listed, f"precondition: the station was sent {device_id}"
    return listed[-1]


def test_a_stations_first_summary_after_subscribing_lists_every_pump(monkeypatch):
    ward = make_ward("r39feed")
    make_device("R39_FEED_MOVING", ward=ward, last_seen_at=timezone.now())
    make_device("R39_FEED_OCCLUDED", ward=ward, last_seen_at=timezone.now())
    raise_high_alarm("R39_FEED_OCCLUDED")  # raised while the station was away; not changed in the last tick
    real_read = ward_feed_module.pump_summaries
    tick_reading, tick_may_finish = threading.Event(), threading.Event()

    def read(device_ids=None, codes=None):
        if device_ids is not None:  # the tick's read of the pumps changed since the last tick
            tick_reading.set()
            tick_may_finish.wait(10)
        return real_read(device_ids, codes)

    monkeypatch.setattr(ward_feed_module, "pump_summaries", read)
    scope = WardScope(label="r39feed", codes={"r39feed"})
    received: list[dict] = []

    async def back_station(event: str, body: dict) -> None:
        if event == events.WARD_SUMMARY:
            received.append(body)

    async def main() -> None:
        feed = WardFeed(tick_s=3600)
        feed._subscribers["other|r39feed"] = (scope, _ignored)  # another station of the ward, watching
        feed._dirty.add("R39_FEED_MOVING")  # its progress in the last second
        tick = asyncio.create_task(feed.tick())
        deadline = time.monotonic() + 10
        while not tick_reading.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        subscribed = asyncio.create_task(feed.subscribe("back|r39feed", scope, back_station))  # back after a loss
        await asyncio.sleep(0.2)
        tick_may_finish.set()
        await asyncio.gather(tick, subscribed)
        if feed._task is not None:
            feed._task.cancel()

    asyncio.run(main())
    assert received, "precondition: the station got its summaries"
    first = received[0]
    listed = sorted(pump["deviceId"] for pump in first.get("pumps", []))
    assert first.get("full"), (
        f"the station's first summary after subscribing lists only {listed} (full: {first.get('full')}): live.js takes "
        "it as the feed received again, and R39_FEED_OCCLUDED's card reads its state from before the loss"
    )


def test_a_change_after_the_full_read_reaches_the_station_though_a_tick_ran_while_it_was_sent():
    """The full summary read, an occlusion raised, and a tick run while the full summary is still being sent (a slow
    socket): passed by in that tick, the station would keep the full summary's "no alarm" until the pump next
    changed."""
    ward = make_ward("r39late")
    make_device("R39_LATE_OCCLUDED", ward=ward, last_seen_at=timezone.now())
    scope = WardScope(label="r39late", codes={"r39late"})
    received: list[dict] = []

    async def main() -> None:
        feed = WardFeed(tick_s=3600)
        feed._subscribers["other|r39late"] = (scope, _ignored)  # another station of the ward, watching
        sending_full, full_may_go = asyncio.Event(), asyncio.Event()

        async def slow_station(event: str, body: dict) -> None:
            if event == events.WARD_SUMMARY and body.get("full"):
                sending_full.set()
                await full_may_go.wait()
            if event == events.WARD_SUMMARY:
                received.append(body)

        subscribed = asyncio.create_task(feed.subscribe("slow|r39late", scope, slow_station))
        await asyncio.wait_for(sending_full.wait(), 10)  # its full summary is read, and on its way
        await sync_to_async(raise_high_alarm)("R39_LATE_OCCLUDED")
        feed._dirty.add("R39_LATE_OCCLUDED")  # as the fan-out marks it
        tick = asyncio.create_task(feed.tick())
        await asyncio.sleep(0.2)
        full_may_go.set()
        await asyncio.gather(subscribed, tick)
        if feed._task is not None:
            feed._task.cancel()

    asyncio.run(main())
    assert received[0].get("full"), "precondition: the station's first summary is its full one"
    pump = _last_state_of(received, "R39_LATE_OCCLUDED")
    assert pump.get("topAlarm"), (
        "an occlusion raised after the station's full read, its tick run while the full summary was being sent: "
        f"the station was never told (last read: {pump.get('topAlarm')}, {len(received)} summaries)"
    )
