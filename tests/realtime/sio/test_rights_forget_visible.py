"""A rights re-check that found a pump withdrawn also forgets the connection's cached set of visible pumps:
else a `subscribe:device` right after a nudged re-check still admitted a pump of the ward just taken away (for
up to `RIGHTS_RECHECK_S`, the cache's age), undoing at once what the nudge made immediate. Database reads
replaced; the `Subscriber` and the re-check's verdict handling are the real ones."""

import asyncio
from unittest import mock

from realtime.sio import subscriptions
from realtime.sio.rights import LiveConnection, Verdict, rights
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join


def test_a_pump_withdrawn_by_a_recheck_cannot_be_subscribed_again_from_the_cache():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    visible = {"PUMP_A", "PUMP_B"}

    async def close() -> None:
        return None

    async def main() -> None:
        await subscriber.handle("subscribe:device", {"deviceId": "PUMP_A"})
        visible.clear()  # the nurse's ward is taken away; the nudged re-check withdraws PUMP_A
        verdict = Verdict(principal=subscriber.principal, lost_devices={"PUMP_A"})
        await rights._apply("sid", LiveConnection(subscriber, close), verdict)
        transport.sent.clear()
        await subscriber.handle("subscribe:device", {"deviceId": "PUMP_B"})

    with (
        mock.patch.object(subscriptions, "visible_device_ids", side_effect=lambda _: frozenset(visible)),
        mock.patch.object(subscriptions, "device_access", return_value="Not permitted to watch this pump"),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        asyncio.run(main())
    assert "PUMP_B" not in subscriber.limits.devices, "a pump of the withdrawn ward was subscribed from the cache"
    assert transport.messages() == ["Not permitted to watch this pump"]
