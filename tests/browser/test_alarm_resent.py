"""An alarm the page already has, sent to it again (the documented duplicate after a re-subscription, or the
snapshot that resumes a stream the server had stopped), is news to no one: never announced again, never sounded
again through a silence the nurse set for it.

What was found (review of issue 3): a duplicate `device:alarm` alone changed nothing a nurse notices (announcements
are keyed by the alarm's id and its alert, the sound by the set of alarms sounding, and live.js drops the old stream's
copies until the new `stream:subscribed`). But while a pump's stream was stopped (a refusal, "Too many requests" or
"subscribe again") the monitor sounds nothing and its audio forgot which high alarms it had heard; the snapshot
that resumed the stream brought the same alarm back as "new", which ended the nurse's silence: the alarm sounded
again, though nothing about it had changed.
"""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def high_alarm(device_id: str) -> None:
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip


def silenced_monitor(open_page, device_id: str, ward_code: str, raise_alarm=None):
    """A monitor sounding the pump's high alarm (`raise_alarm(device_id)`, `high_alarm` by default), then silenced
    by the nurse."""
    ward = make_ward(ward_code)
    make_device(device_id, ward=ward, bed="3")
    page = open_page(make_user(f"{ward_code}-nurse", ward=ward), f"/devices/{device_id}/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    monitor = page.locator("#monitor")
    (raise_alarm or high_alarm)(device_id)
    expect(page.locator('.alarm[data-priority="high"]')).to_have_count(1, timeout=5_000)
    if monitor.get_attribute("data-audio") == "blocked":  # the browser's autoplay rule: one gesture allows it
        page.get_by_role("button", name="Enable alarm sound").click()
    expect(monitor).to_have_attribute("data-audio", "high")
    page.get_by_role("button", name="Silence 2 min").click()
    expect(monitor).to_have_attribute("data-audio", "silenced")
    return page, monitor


def test_an_alarm_sent_again_is_not_announced_or_sounded_again(open_page):
    page, monitor = silenced_monitor(open_page, "BRW_DUP_ALARM", "dup1")
    announcer = page.locator("#alarm-announcer")
    expect(announcer).to_contain_text("Line blocked")
    page.evaluate("document.getElementById('alarm-announcer').textContent = ''")
    # the same change once more, as the old stream's copy of a re-subscription would bring it
    page.evaluate("""() => {
        const stream = window.pumpstreamLive.devices.get('BRW_DUP_ALARM');
        const alarm = [...window.pumpstreamMonitor.alarms.values()][0];
        window.pumpstreamLive.onDeviceEvent('device:alarm', {deviceId: 'BRW_DUP_ALARM', seq: stream.lastSeq, alarm});
    }""")
    # and the snapshot of a re-subscription, which carries it again
    page.evaluate("window.pumpstreamLive.resubscribe(window.pumpstreamLive.devices.get('BRW_DUP_ALARM'))")
    page.wait_for_function("window.pumpstreamLive.devices.get('BRW_DUP_ALARM').lastSeq !== null")
    page.wait_for_timeout(500)
    expect(page.locator('.alarm[data-priority="high"]')).to_have_count(1)
    assert announcer.inner_text() == "", f"the alarm was announced again: {announcer.inner_text()!r}"
    expect(monitor).to_have_attribute("data-audio", "silenced")


def test_an_alarm_silenced_before_its_stream_stopped_stays_silenced_when_it_resumes(open_page):
    page, monitor = silenced_monitor(open_page, "BRW_DUP_RESUME", "dup2")
    # the server refuses a request of the pump (its rate limit): the page stops showing it live and asks again 3 s later
    page.evaluate("""window.pumpstreamLive.onServerError({message: 'Too many requests', request: 'subscribe:device',
                                                           deviceId: 'BRW_DUP_RESUME'})""")
    expect(page.locator("#mon-not-live")).to_be_visible()
    page.wait_for_function("window.pumpstreamLive.isReceiving('BRW_DUP_RESUME')", timeout=10_000)
    expect(page.locator("#mon-not-live")).to_be_hidden(timeout=5_000)  # the snapshot is applied
    expect(page.locator('.alarm[data-priority="high"]')).to_have_count(1)
    assert monitor.get_attribute("data-audio") == "silenced", (
        f"the alarm the nurse silenced sounds again ({monitor.get_attribute('data-audio')}) once its stream resumed, "
        "though nothing about it changed: the snapshot's copy of it was taken for a new high alarm"
    )
    high_alarm_new = page.evaluate("!document.getElementById('alarm-audio-high').paused")
    assert not high_alarm_new, "the high alarm pattern plays again through the silence"
