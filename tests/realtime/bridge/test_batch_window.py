"""The bridge's batch window adapts: no waiting after a cheap commit, up to `window_s` after a slow one."""

import threading

from django.utils import timezone

from realtime.bridge.ingest import InboundMessage
from realtime.bridge.worker import BatchLimits, Bridge


def message(n: int) -> InboundMessage:
    return InboundMessage(topic="devices/PUMP_0001/progress", payload=b"{}", received_at=timezone.now(), mid=n)


def collect_with_a_latecomer(last_commit_s: float, *, window_s: float = 2.0) -> list[int]:
    """One message queued now, another 0.2 s later; which does the next batch hold?"""
    bridge = Bridge(limits=BatchLimits(window_s=window_s))
    bridge._last_commit_s = last_commit_s
    bridge.inbox.put(message(1))
    latecomer = threading.Timer(0.2, bridge.inbox.put, args=(message(2),))
    latecomer.start()
    try:
        return [item.mid for item in bridge.collect()]
    finally:
        latecomer.cancel()


def test_after_a_cheap_commit_a_batch_does_not_wait():
    assert collect_with_a_latecomer(0.0) == [1]


def test_after_a_slow_commit_a_batch_waits_about_as_long():
    assert collect_with_a_latecomer(1.0) == [1, 2]


def test_the_window_caps_the_wait():
    assert collect_with_a_latecomer(1.0, window_s=0.0) == [1]
