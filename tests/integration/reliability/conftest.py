"""Fixtures of the reliability tests: a Mosquitto of their own (it gets restarted) and a bridge on it."""

import pytest

from tests.support.bridge import BridgeProcess
from tests.support.broker import MosquittoBroker
from tests.support.processes import free_port


@pytest.fixture
def own_broker(tmp_path):
    """A Mosquitto with persistence that only this test uses, so restarting it disturbs no other test."""
    server = MosquittoBroker(tmp_path / "mosquitto", persistence=True).start()
    yield server
    server.stop()


@pytest.fixture
def own_bridge(own_broker, artifacts_dir):
    """A real bridge on that broker; without a Daphne its forwarder has nowhere to go, which it tolerates."""
    process = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    yield process
    process.stop()
