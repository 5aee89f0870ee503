"""A connection's requests that find its visible pumps unread share one read and resume together: a page's 20
`subscribe:device` sent at once resumed one per turn of the event loop behind a lock (20 turns, hundreds of ms in a
reconnect storm). A rights re-check's `forget_visible` still makes the next request read afresh, even while a read
started before it is under way. Database reads replaced; the `Subscriber` is the real one."""

import asyncio
from unittest import mock

from realtime.sio import subscriptions
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join

PUMPS = [f"PUMP_{n:02d}" for n in range(20)]


def test_requests_sent_at_once_share_one_read_and_are_admitted_together():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    reads: list[int] = []
    turns_to_admit_all: list[int] = []

    def visible(_principal) -> frozenset[str]:
        reads.append(1)
        return frozenset(PUMPS)

    async def main() -> None:
        requests = [asyncio.ensure_future(subscriber.handle("subscribe:device", {"deviceId": device_id}))
                    for device_id in PUMPS]  # fmt: skip
        while len(subscriber.limits.devices) == 0:  # until the read is back
            await asyncio.sleep(0)
        turns = 0
        while len(subscriber.limits.devices) < len(PUMPS):
            await asyncio.sleep(0)
            turns += 1
        turns_to_admit_all.append(turns)
        await asyncio.gather(*requests)

    with (
        mock.patch.object(subscriptions, "visible_device_ids", side_effect=visible),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        asyncio.run(main())
    assert len(reads) == 1, f"{len(reads)} reads of the visible pumps for 20 requests"
    assert transport.joined == set(PUMPS)
    assert turns_to_admit_all[0] <= 2, f"the 20 requests were admitted over {turns_to_admit_all[0]} loop turns"


def test_forget_during_a_read_makes_the_next_request_read_afresh():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    visible = {"PUMP_A", "PUMP_B"}

    async def main() -> None:
        gate = asyncio.Event()
        started = asyncio.Event()
        loop = asyncio.get_running_loop()
        answers = [frozenset(visible)]  # the first read saw the ward before it was taken away

        def read(_principal) -> frozenset[str]:
            if answers:
                loop.call_soon_threadsafe(started.set)
                answer = answers.pop()
                asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
                return answer
            return frozenset(visible)

        with mock.patch.object(subscriptions, "visible_device_ids", side_effect=read):
            first = asyncio.ensure_future(subscriber.handle("subscribe:device", {"deviceId": "PUMP_A"}))
            await started.wait()
            visible.clear()  # the ward is taken away; the nudged re-check forgets the cached set
            subscriber.forget_visible()
            gate.set()
            await first
            transport.sent.clear()
            await subscriber.handle("subscribe:device", {"deviceId": "PUMP_B"})

    with (
        mock.patch.object(subscriptions, "device_access", return_value="Not permitted to watch this pump"),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        asyncio.run(main())
    assert "PUMP_B" not in subscriber.limits.devices, "a read from before the withdrawal was cached and used"
    assert transport.messages() == ["Not permitted to watch this pump"]
