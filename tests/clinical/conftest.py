"""Clinical scenarios: a broker and a bridge of this folder's own, forwarding into the shared Daphne."""

import pytest

from tests.support.bridge import BridgeProcess, bridge_env
from tests.support.broker import MosquittoBroker
from tests.support.browser import chromium_running, signed_in_page
from tests.support.page_shelf import TEST_PASSED, PageShelf


@pytest.fixture(scope="module")
def clinical_broker(tmp_path_factory):
    """A Mosquitto only these scenarios' pumps and bridge use (another bridge must not ingest them too)."""
    server = MosquittoBroker(tmp_path_factory.mktemp("clinical-mosquitto"), persistence=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clinical_bridge(request, clinical_broker, daphne_server, django_db_blocker, artifacts_dir):
    """The real bridge, forwarding its commits into the shared Daphne (with the module's `BRIDGE_ENV`)."""
    with django_db_blocker.unblock():
        process = BridgeProcess(clinical_broker.url, daphne_server.internal_url, artifacts_dir,
                                **bridge_env(request)).start()  # fmt: skip
    yield process
    process.stop()


@pytest.fixture(scope="module")
def clinical_shelf(clinical_bridge):
    """Headless chromium, started after Daphne and the bridge (they never inherit the ORM-beside-a-loop permission),
    and the pages its tests keep (`tests/support/page_shelf.py`)."""
    with chromium_running() as browser:
        shelf = PageShelf(browser)
        try:
            yield shelf
        finally:
            shelf.close()


@pytest.fixture
def clinical_page(request, clinical_shelf, daphne_server):
    """`clinical_page(user, path)`: a signed-in chromium page on `path` of the shared Daphne, as good as new."""
    clinical_shelf.test_started()

    def open_(user, path: str = "/"):
        return signed_in_page(clinical_shelf.browser, user, daphne_server.url, path, shelf=clinical_shelf)[1]

    yield open_
    clinical_shelf.test_ended(daphne_server.url, passed=request.node.stash.get(TEST_PASSED, False))


@pytest.fixture
def clinical_pump(clinical_broker):
    """`clinical_pump(device_id)`: a pump publishing on the clinical broker (closed after the test)."""
    from tests.support.bridge import PumpClient

    pumps = []

    def make(device_id: str) -> PumpClient:
        pumps.append(PumpClient(clinical_broker.url, device_id))
        return pumps[-1]

    yield make
    for pump in pumps:
        pump.close()
