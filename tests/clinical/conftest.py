"""Clinical scenarios: a broker and a bridge of this folder's own, forwarding into the shared Daphne."""

import pytest

from tests.support.bridge import BridgeProcess
from tests.support.broker import MosquittoBroker


@pytest.fixture(scope="module")
def clinical_broker(tmp_path_factory):
    """A Mosquitto only these scenarios' pumps and bridge use (another bridge must not ingest them too)."""
    server = MosquittoBroker(tmp_path_factory.mktemp("clinical-mosquitto"), persistence=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clinical_bridge(clinical_broker, daphne_server, django_db_blocker, artifacts_dir):
    """The real bridge, forwarding its commits into the shared Daphne."""
    with django_db_blocker.unblock():
        process = BridgeProcess(clinical_broker.url, daphne_server.internal_url, artifacts_dir).start()
    yield process
    process.stop()
