"""The test helpers' own promises that `make test`'s parallel workers rely on: free ports and no leaked processes."""

import os

import pytest

from tests.support.bridge import BridgeProcess
from tests.support.processes import PORT_BLOCK_SIZE, PORT_BLOCK_START, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_bridge_that_never_connects_is_not_left_running(artifacts_dir):
    """A start that times out kills its bridge: one left running would go on consuming and writing beside the
    later tests' bridges (and loading the machine until the run ends)."""
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    bridge = BridgeProcess(nowhere, f"http://127.0.0.1:{free_port()}", artifacts_dir)
    with pytest.raises(TimeoutError):
        bridge.start(timeout=2)
    assert bridge.process.poll() is not None, f"the bridge (pid {bridge.process.pid}) was left running"


def test_free_ports_are_never_handed_out_twice_in_a_row():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and int(worker[2:]) < 12:
        block = PORT_BLOCK_START + int(worker[2:]) * PORT_BLOCK_SIZE
        assert all(block <= port < block + PORT_BLOCK_SIZE for port in ports), f"{worker} left its block: {ports}"
