"""A broker and a bridge of the realtime tests' own, forwarding into the shared Daphne."""

import pytest

from tests.support.bridge import BridgeProcess
from tests.support.broker import MosquittoBroker
from tests.support.sio import StreamClient


@pytest.fixture(scope="module")
def realtime_broker(tmp_path_factory):
    """A Mosquitto only these tests' pumps and bridge use (another bridge must not ingest them too)."""
    server = MosquittoBroker(tmp_path_factory.mktemp("realtime-mosquitto"), persistence=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def realtime_bridge(realtime_broker, daphne_server, django_db_blocker, artifacts_dir):
    """The real bridge, forwarding its commits into the shared Daphne's "/internal" namespace."""
    with django_db_blocker.unblock():
        process = BridgeProcess(realtime_broker.url, daphne_server.internal_url, artifacts_dir).start()
    yield process
    process.stop()


@pytest.fixture
def clients():
    """Socket.IO clients a test opened, closed after it."""
    opened: list[StreamClient] = []
    yield opened
    for client in opened:
        client.close()
