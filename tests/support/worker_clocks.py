"""The bridge worker's clocks moved by a test: a stall (both clocks on) and a wall clock stepped (the wall alone)."""

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from realtime.bridge import worker


class WorkerClocks:
    """`mono_s` is how far time really went on (both clocks move), `wall_step_s` how wrong the wall clock is."""

    def __init__(self) -> None:
        self.mono_s = 0.0
        self.wall_step_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.mono_s

    def now(self):
        return timezone.now() + timedelta(seconds=self.mono_s + self.wall_step_s)


@pytest.fixture
def clocks(monkeypatch) -> WorkerClocks:
    """`realtime.bridge.worker`'s `time.monotonic` and `timezone.now`, as the test moves them."""
    clocks = WorkerClocks()
    monkeypatch.setattr(worker, "time", SimpleNamespace(monotonic=clocks.monotonic, time=time.time))
    monkeypatch.setattr(worker, "timezone", SimpleNamespace(now=clocks.now))
    return clocks
