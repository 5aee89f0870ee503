"""What the alarm and read-back scenarios share: a pump of its own, a nurse watching it, and waiting on both."""

import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from devices.models import Alarm, Device
from protocol import events
from tests.browser.conftest import open_page  # noqa: F401  (a fixture: uses `chromium`, `page_shelf`, `stack` below)
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.browser import chromium_running
from tests.support.page_shelf import PageShelf
from tests.support.sio import StreamClient, session_cookie

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


@dataclass
class Bedside:
    """One pump (a fresh id per test: Daphne's per-pump order survives the database flush), its nurse's screen."""

    device: Device
    nurse: object
    pump: PumpClient
    screen: StreamClient

    @property
    def device_id(self) -> str:
        return self.device.device_id

    def alarm_event(self, predicate, *, start: int = 0, timeout: float = 10.0) -> dict:
        """The first `device:alarm` of this pump (from event index `start`) whose alarm satisfies `predicate`."""
        return self.screen.events.wait_for(
            lambda name, data: name == events.DEVICE_ALARM and data.get("deviceId") == self.device_id
            and predicate(data["alarm"]), start=start, timeout=timeout,
        )["alarm"]  # fmt: skip

    def notification_for(self, alarm_id: int, *, start: int = 0, timeout: float = 10.0) -> dict:
        """The first `device:notification` of this alarm (from event index `start`)."""
        return self.screen.events.wait_for(
            lambda name, data: name == events.DEVICE_NOTIFICATION and data.get("deviceId") == self.device_id
            and data["notification"]["data"]["alarmId"] == alarm_id, start=start, timeout=timeout,
        )["notification"]  # fmt: skip

    def notifications(self) -> list[dict]:
        return [data["notification"] for data in self.screen.events.named(events.DEVICE_NOTIFICATION,
                                                                           device_id=self.device_id)]  # fmt: skip

    def mark(self) -> int:
        """The index of the next event this screen receives."""
        return len(self.screen.events.items)

    def start_command(self, infusion_id: str) -> dict:
        """The START_INFUSION the pump received for this infusion (waits for it)."""
        return wait_until(lambda: next((c for c in self.pump.commands if c["command"] == "START_INFUSION"
                                        and c["payload"]["infusionId"] == infusion_id), None),
                          message="START_INFUSION never reached the pump")  # fmt: skip

    def alarm(self, **filters) -> Alarm:
        return wait_until(lambda: Alarm.objects.filter(device=self.device, **filters).first(),
                          message=f"no alarm {filters} in the database")  # fmt: skip


def bedside_open(broker_url: str, daphne_url: str, *, prefix: str = "CLIN") -> Bedside:
    """A registered pump, a nurse of its ward, her Socket.IO screen subscribed to it, and the pump's MQTT client."""
    ward = make_ward(f"w{uuid.uuid4().hex[:6]}")
    device = make_device(f"{prefix}_{uuid.uuid4().hex[:8].upper()}", ward=ward)
    nurse = make_user(f"nurse{uuid.uuid4().hex[:6]}", ward=ward)
    screen = StreamClient(daphne_url, cookie=session_cookie(nurse)).connect()
    kind, reply = screen.subscribe(device.device_id)
    assert kind == events.STREAM_SUBSCRIBED, reply
    return Bedside(device, nurse, PumpClient(broker_url, device.device_id), screen)


def bedside_close(bedside: Bedside) -> None:
    bedside.screen.close()
    bedside.pump.close()


# ---- Chromium beside this folder's broker and bridge (the page scenarios) -----------------------------


@pytest.fixture(scope="module")
def chromium(clinical_bridge):
    """Started after Daphne and the bridge, so they never inherit the permission to use the ORM beside a loop."""
    with chromium_running() as browser:
        yield browser


@pytest.fixture(scope="module")
def page_shelf(chromium):
    """The pages `open_page` keeps between this module's tests."""
    shelf = PageShelf(chromium)
    yield shelf
    shelf.close()


@pytest.fixture
def stack(clinical_bridge, daphne_server, clinical_broker):
    """What `open_page` needs: the server, this folder's broker and bridge."""
    return {"url": daphne_server.url, "broker": clinical_broker, "bridge": clinical_bridge, "daphne": daphne_server}


def start_from_the_wizard(page, *, rate_ml_h: str = "120", volume_ml: str = "30") -> None:
    """Skip the patient, order rate and volume (time computed), no bolus, type the word, Start: the waiting window."""
    fill_the_wizard(page, rate_ml_h=rate_ml_h, volume_ml=volume_ml)
    press_start(page)


def fill_the_wizard(page, *, rate_ml_h: str = "120", volume_ml: str = "30") -> None:
    """Every step up to the typed word: the next click on Start places the order."""
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Drug", exact=True).fill("Heparin")
    page.get_by_label("Rate (mL/h)").fill(rate_ml_h)
    page.get_by_label("Volume (mL)", exact=True).fill(volume_ml)
    page.get_by_role("button", name="Next: review").click()
    page.locator("#confirm").fill("start")


def press_start(page) -> None:
    page.get_by_role("button", name="Start infusion").click()
    expect(page.locator("#waiting-modal")).to_be_visible()
