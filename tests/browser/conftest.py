"""Browser tests: a real Mosquitto, Daphne, the MQTT bridge, simulated pumps, and headless chromium."""

import contextlib

import pytest

from devices.models import Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import SessionStatus
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import BridgeProcess, bridge_env, wait_until
from tests.support.browser import LAPTOP, chromium_running, signed_in_page
from tests.support.page_shelf import TEST_PASSED, PageShelf
from tests.support.simulator import SimulatorProcess


class HeldProcesses:
    """The browser tests' bridge and chromium, kept from one module to the next on this worker (the browser tests
    are one work unit, `tests/support/xdist.py`): starting both took 2.5-6 s a module, about 150 s of the suite's
    work. The bridge is kept while the next module's `BRIDGE_ENV` is its own, chromium until the worker leaves the
    browser tests (Playwright's loop and the ORM's permission beside it must not outlive them)."""

    def __init__(self) -> None:
        self.bridge: BridgeProcess | None = None
        self.bridge_env: dict[str, str] = {}
        self.bridge_of: tuple = ()
        self.browser = None
        self.shelf: PageShelf | None = None  # the pages `open_page` keeps between tests
        self._chromium: contextlib.ExitStack | None = None

    def bridge_for(self, env: dict[str, str], start, *, of: tuple) -> BridgeProcess:
        """The held bridge if it has these settings, links the same broker and Daphne (`of`) and still runs (a test
        may have stopped it), else a new one."""
        if self.bridge is not None and ((env, of) != (self.bridge_env, self.bridge_of) or not self.bridge.running()):
            self.stop_bridge()
        if self.bridge is None:
            self.bridge, self.bridge_env, self.bridge_of = start(), env, of
        return self.bridge

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
        self.bridge, self.bridge_env, self.bridge_of = None, {}, ()

    def chromium(self):
        if self.browser is None:
            self._chromium = contextlib.ExitStack()
            self.browser = self._chromium.enter_context(chromium_running())
            self.shelf = PageShelf(self.browser)
            self._chromium.callback(self.shelf.close)
        return self.browser

    def close_chromium(self) -> None:
        if self._chromium is not None:
            self._chromium.close()
        self.browser, self._chromium, self.shelf = None, None, None


HELD = HeldProcesses()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """At a module's end the bridge goes, unless the next module runs on the same one, before the module's own
    teardown: its flush (`no_row_outlives_its_module`) must come after the last row the bridge writes. Chromium
    goes when the worker leaves the browser tests, after the test's own fixtures (its browser contexts)."""
    leaving = nextitem is None or nextitem.path.parent != item.path.parent
    if leaving or (
        nextitem.module is not item.module and dict(getattr(nextitem.module, "BRIDGE_ENV", {})) != HELD.bridge_env
    ):
        HELD.stop_bridge()
    try:
        return (yield)
    finally:
        if leaving:
            HELD.close_chromium()


@pytest.fixture(scope="module")
def browser_bridge(request, broker, daphne_server, django_db_blocker, artifacts_dir):
    """The bridge between the shared broker and the shared Daphne, for this module's tests (with the module's
    `BRIDGE_ENV` settings, if it has any: a timer its tests must not race, or one they test)."""

    def start() -> BridgeProcess:
        with django_db_blocker.unblock():
            return BridgeProcess(broker.url, daphne_server.internal_url, artifacts_dir, **env).start()

    env = bridge_env(request)
    bridge = HELD.bridge_for(env, start, of=(broker.url, daphne_server.internal_url))
    bridge.resume()  # a test that paused it and failed before resuming it
    return bridge


@pytest.fixture(scope="module")
def chromium(browser_bridge):
    """After the bridge; the processes started while it runs never get the ORM permission beside its loop
    (`processes.subprocess_env`)."""
    return HELD.chromium()


@pytest.fixture(scope="module")
def page_shelf(chromium):
    """The pages `open_page` keeps between tests on this chromium (held with it)."""
    return HELD.shelf


@pytest.fixture
def stack(browser_bridge, daphne_server, broker):
    """What a page needs: the server, the broker and the bridge (its heartbeat keeps monitoring alive)."""
    return {"url": daphne_server.url, "broker": broker, "bridge": browser_bridge, "daphne": daphne_server}


@pytest.fixture
def open_page(request, chromium, page_shelf, stack):
    """`open_page(user, path, viewport=LAPTOP)`: a signed-in page on `path`, in a browser context of its own, as
    good as new (kept from an earlier test where it can be: `tests/support/page_shelf.py`)."""
    page_shelf.test_started()

    def open_(user, path: str = "/", viewport: dict = LAPTOP):
        return signed_in_page(chromium, user, stack["url"], path, viewport, shelf=page_shelf)[1]

    yield open_
    page_shelf.test_ended(stack["url"], passed=request.node.stash.get(TEST_PASSED, False))


def rate_reported(session_pk: int, device_id: str) -> bool:
    """Whether the session's pump has reported its rate (its first progress, a second after it confirmed)."""
    session = InfusionSession.objects.get(pk=session_pk)
    return "flowRate" in (session.progress_on(Device.objects.get(device_id=device_id)) or {})


@pytest.fixture
def running_pump(stack, artifacts_dir):
    """Bed 4's simulated pump infusing Heparin for Ann Lee, its first progress stored; yields the nurse. (Yielded at
    its confirmation, a page rendered twice a second apart, before and after that progress, said "— (ordered 60.0
    mL/h)" then "60.0 mL/h": a line more or less on a phone, which the tests comparing two renders took for a jump.)"""
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
        wait_until(lambda: rate_reported(session.pk, "BRW_D_RUN"), timeout=20,
                   message=f"the simulated pump never reported its progress:\n{sim.log_tail()}")  # fmt: skip
        yield nurse
    finally:
        sim.stop()
