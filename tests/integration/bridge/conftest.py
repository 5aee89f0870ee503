"""Fixtures for the bridge against a real Mosquitto: a shared bridge process and a simulated pump."""

import pytest

from tests.support.bridge import BridgeProcess, PumpClient
from tests.support.processes import free_port


@pytest.fixture(scope="module")
def shared_bridge(broker, django_db_setup, django_db_blocker, artifacts_dir):
    """One bridge per module for the tests that only need it running (restarts and kills use their own).

    Not per session: every bridge drains the one command outbox, so a bridge left running would publish
    the commands of a later test that means to show what its own bridge does with them.
    """
    with django_db_blocker.unblock():
        process = BridgeProcess(broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    yield process
    process.stop()


@pytest.fixture
def pump(broker):
    """A pump publishing as PUMP_0001 (register it with `make_device` in the test)."""
    client = PumpClient(broker.url, "PUMP_0001")
    yield client
    client.close()
