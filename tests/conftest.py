"""Shared fixtures: a real Mosquitto, a real Daphne, and the file-backed test database they can see."""

from pathlib import Path

import pytest

from tests.support.broker import MosquittoBroker
from tests.support.daphne import DaphneServer

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep logs and screenshots (kept after the run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> MosquittoBroker:
    """A real Mosquitto with persistence, shared by the session's tests."""
    server = MosquittoBroker(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, broker, artifacts_dir) -> DaphneServer:
    """Daphne serving `pumpstream.asgi:application` on a free port, sharing the test database."""
    server = DaphneServer(artifacts_dir, MQTT_URL=broker.url).start()
    yield server
    server.stop()
