"""Browser tests: a real Mosquitto, Daphne, the MQTT bridge, simulated pumps, and headless chromium."""

import pytest

from devices.models import Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import BridgeProcess, bridge_env, wait_until
from tests.support.browser import LAPTOP, chromium_running, signed_in_page
from tests.support.simulator import SimulatorProcess


@pytest.fixture(scope="module")
def browser_bridge(request, broker, daphne_server, django_db_blocker, artifacts_dir):
    """The bridge between the shared broker and the shared Daphne, for this module's tests (with the module's
    `BRIDGE_ENV` settings, if it has any: a timer its tests must not race, or one they test)."""
    with django_db_blocker.unblock():
        bridge = BridgeProcess(broker.url, daphne_server.internal_url, artifacts_dir, **bridge_env(request)).start()
    yield bridge
    bridge.stop()


@pytest.fixture(scope="module")
def chromium(browser_bridge):
    """Started after Daphne and the bridge, so they never inherit the permission to use the ORM beside a loop."""
    with chromium_running() as browser:
        yield browser


@pytest.fixture
def stack(browser_bridge, daphne_server, broker):
    """What a page needs: the server, the broker and the bridge (its heartbeat keeps monitoring alive)."""
    return {"url": daphne_server.url, "broker": broker, "bridge": browser_bridge, "daphne": daphne_server}


@pytest.fixture
def open_page(chromium, stack):
    """`open_page(user, path, viewport=LAPTOP)`: a fresh signed-in browser context on `path`."""
    contexts = []

    def open_(user, path: str = "/", viewport: dict = LAPTOP):
        context, page = signed_in_page(chromium, user, stack["url"], path, viewport)
        contexts.append(context)
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def running_pump(stack, artifacts_dir):
    """Bed 4's simulated pump infusing Heparin for Ann Lee; yields the nurse."""
    ward = make_ward("d4")
    nurse = make_user("dialog-nurse", ward=ward)
    make_device("BRW_D_RUN", ward=ward, bed="4", has_presence=True)
    sim = SimulatorProcess(stack["broker"].url, "BRW_D_RUN", "--auto", "--speed", "1", "--confirm-delay", "0",
                           log_dir=artifacts_dir).start()  # fmt: skip
    try:
        wait_until(lambda: Device.objects.get(device_id="BRW_D_RUN").last_seen_at, timeout=20,
                   message=f"the simulated pump never spoke:\n{sim.log_tail()}")  # fmt: skip
        order = make_order(drug="Heparin", bolus_enabled=False, planned_volume_ml=100, planned_time_min=100,
                           flow_rate_ml_min=1.0, patient={"name": "Ann Lee", "bed": "4"})  # fmt: skip
        session = infusion_start(device_id="BRW_D_RUN", order=order, user=nurse)
        wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, timeout=20,
                   message=f"the simulated pump never confirmed:\n{sim.log_tail()}")  # fmt: skip
        yield nurse
    finally:
        sim.stop()
