"""A Mosquitto and a bridge of the simulator tests' own, so their retained messages touch no other test."""

import pytest

from tests.support.bridge import BridgeProcess
from tests.support.broker import MosquittoBroker
from tests.support.processes import free_port


@pytest.fixture(scope="module")
def sim_broker(tmp_path_factory):
    """A real Mosquitto for the simulator tests."""
    server = MosquittoBroker(tmp_path_factory.mktemp("sim-mosquitto"), persistence=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sim_bridge(sim_broker, django_db_setup, django_db_blocker, artifacts_dir):
    """A real bridge on that broker (no Daphne: its forwarder has nowhere to go, which it tolerates)."""
    with django_db_blocker.unblock():
        process = BridgeProcess(sim_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    yield process
    process.stop()
