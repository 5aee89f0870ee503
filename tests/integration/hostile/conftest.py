"""Fixtures of the hostile tests: a Mosquitto of their own (sessions full of poison must not leak to others)."""

import pytest

from tests.support.broker import MosquittoBroker


@pytest.fixture
def own_broker(tmp_path):
    """A Mosquitto with persistence that only this test uses."""
    server = MosquittoBroker(tmp_path / "mosquitto", persistence=True).start()
    yield server
    server.stop()
