"""Review 7, B: the monitor names the pump's bed as it was when the page was rendered, for good.

`_monitor_panel.html` renders `data-bed` and the heading "Bed 4" once; `device:status` carries `bed` (payloads.py), but
no script reads it: the alarm live region says "High alarm, bed 4: …" (monitor.js announceAlarm) and the Stop / Pause
confirmation names "the infusion of … in bed 4 (pump …)" (monitor_controls.js infusionDescription) after the pump was
moved to bed 12 in the admin, or (today's case) deleted and registered again at bed 12 while the monitor was offline
(it subscribes again and shows the new pump's state under the old pump's bed). A nurse checks the bed before Stop.
"""

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Device
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.registration import pump_delete, pump_register, pump_registration_save
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_monitor_names_the_bed_the_pump_is_at_now(open_page):
    ward = make_ward("r7bed")
    make_device("BRW_R7_BED", ward=ward, bed="4", pump_state="running", last_seen_at=timezone.now())
    page = open_page(make_user("r7bed-nurse", ward=ward), "/devices/BRW_R7_BED/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    monitor = page.locator("#monitor")
    expect(monitor.locator("h1")).to_contain_text("Bed 4")

    device = Device.objects.get(device_id="BRW_R7_BED")
    device.bed = "12"
    pump_registration_save(device=device, fields=["bed"])  # the admin's edit: a device:status with bed 12

    expect(monitor, "the bed the Stop dialog and the alarm announcements name").to_have_attribute(
        "data-bed", "12", timeout=5_000
    )
    expect(monitor.locator("h1")).to_contain_text("Bed 12")
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="BRW_R7_BED"), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
    expect(page.locator("#alarm-announcer"), "the alarm names the bed the nurse must go to").to_have_text(
        "High alarm, bed 12: Line blocked", timeout=5_000
    )


def test_a_monitor_back_after_its_pump_was_registered_again_at_another_bed_names_that_bed(open_page):
    """The pump was deleted and registered again at bed 12 while the monitor was offline: back, it subscribes again
    and shows the new pump's state; its snapshot's status names the bed."""
    ward = make_ward("r7bed2")
    make_device("BRW_R7_ANEW", ward=ward, bed="4", pump_state="running", last_seen_at=timezone.now())
    page = open_page(make_user("r7bed2-nurse", ward=ward), "/devices/BRW_R7_ANEW/")
    banner, monitor = page.locator("#connection-banner"), page.locator("#monitor")
    expect(banner).to_have_text("Live")
    expect(monitor.locator("h1")).to_contain_text("Bed 4")

    page.context.set_offline(True)
    expect(banner).to_have_text("Reconnecting…", timeout=10_000)
    pump_delete(device=Device.objects.get(device_id="BRW_R7_ANEW"))
    pump_register(device=Device(device_id="BRW_R7_ANEW", ward=ward, bed="12"))
    page.context.set_offline(False)
    expect(banner).to_have_text("Live", timeout=15_000)

    expect(monitor, "the bed the Stop dialog and the alarm announcements name").to_have_attribute(
        "data-bed", "12", timeout=5_000
    )
    expect(monitor.locator("h1")).to_contain_text("Bed 12")
