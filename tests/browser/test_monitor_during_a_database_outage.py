"""The pump's monitor while the server cannot vouch for what it shows (review 34, finding 1).

The database goes away (PostgreSQL restarted for a minor upgrade, failed over, its host rebooted) while a nurse watches
a pump's monitor: the bridge can commit nothing, so nothing the pumps send reaches any screen (an alarm waits at the
broker), and every poll of `/api/bridge/` fails. `static/js/bridge_watch.js` changed the banner only when a poll
succeeded, so the last good answer stood for the whole outage: 30 s in, the page read "Live … Online … Connected · last
heard 31 s ago … No active alarms.", no "Monitoring degraded" banner. README: "a yellow Monitoring degraded banner
means the MQTT bridge is not reporting"; format.js: "while it is not, no pump may look online".

The polls failing are staged in the page (an error status, then no answer: every engine), and the real outage on
PostgreSQL: the test stops the cluster this pytest process started and starts it again (`-p tests.support.postgres`,
serially: under xdist the cluster is the controller's and the other worker's tests use it, so it skips there).
"""

import contextlib
import time

import pytest
from django.db import close_old_connections, connection
from playwright.sync_api import expect

from devices.models import Alarm, Device
from tests.factories import make_device, make_user, make_ward
from tests.support import postgres
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
POLLS_FAIL_WITHIN_MS = 20_000  # two polls of 5 s failing, the first up to 5 s away, with room for a slow machine
UNREACHABLE = "the server does not answer"


def pump_online(stack, device_id: str, ward) -> PumpClient:
    """An idle pump with presence, online (its retained status applied): the monitor reads "Online"."""
    make_device(device_id, ward=ward, bed="7", has_presence=True)
    pump = PumpClient(stack["broker"].url, device_id)
    pump.publish("status", {"deviceId": device_id, "status": "online", "firmwareVersion": "3.1"}, retain=True)
    wait_until(lambda: Device.objects.get(device_id=device_id).presence == "online", timeout=20,
               message="the pump's online never applied")  # fmt: skip
    return pump


def expect_monitoring_degraded(page, *, within_ms: int) -> None:
    """What the nurse must see when the server cannot vouch for the pump: the banner, no pump online, and no
    "No active alarms." that reads as the all-clear."""
    banner = page.locator("#degraded-banner")
    expect(banner, "no 'Monitoring degraded' banner while the polls fail").to_be_visible(timeout=within_ms)
    expect(banner).to_contain_text(UNREACHABLE)
    expect(page.locator("#mon-connectivity"), "the pump still reads Online").not_to_have_text("Online")
    expect(page.locator("#mon-last-heard")).not_to_contain_text("Connected")
    expect(page.locator("#alarm-list")).not_to_contain_text("No active alarms.")


def expect_monitoring_healthy(page, *, within_ms: int) -> None:
    expect(page.locator("#degraded-banner"), "the banner stays after the polls succeed again").to_be_hidden(
        timeout=within_ms
    )
    expect(page.locator("#mon-connectivity")).to_have_text("Online")


def test_failed_bridge_polls_turn_the_monitor_degraded_until_one_is_answered(open_page, stack):
    ward = make_ward("pollfail")
    pump = pump_online(stack, "BRW_POLLFAIL", ward)
    try:
        page = open_page(make_user("pollfail-nurse", ward=ward), "/devices/BRW_POLLFAIL/")
        expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=15_000)
        expect(page.locator("#degraded-banner")).to_be_hidden()
        failures = []

        def fail(route) -> None:  # a 500, then no answer at all (a network error), in turn
            failures.append(route.request.url)
            if len(failures) % 2:
                route.fulfill(status=500, body="Server Error", content_type="text/html")
            else:
                route.abort("connectionrefused")

        page.route("**/api/bridge/", fail)
        expect_monitoring_degraded(page, within_ms=POLLS_FAIL_WITHIN_MS)
        assert len(failures) >= 2, f"degraded after {len(failures)} failed poll: one failure is no outage"
        page.unroute("**/api/bridge/")
        expect_monitoring_healthy(page, within_ms=15_000)
        expect(page.locator("#alarm-list")).to_have_text("No active alarms.")
    finally:
        pump.close()


def test_failed_bridge_polls_turn_the_overviews_pumps_stale(open_page, stack):
    """The overview takes the same road: its cards stop reading Online, and its station says the server does not
    answer (not that the server cannot hear the pumps: it has not said so)."""
    ward = make_ward("pollfailov")
    pump = pump_online(stack, "BRW_POLLFAIL_OV", ward)
    try:
        page = open_page(make_user("pollfailov-nurse", ward=ward), "/")
        card = page.locator('.pump-card[data-device-id="BRW_POLLFAIL_OV"]')
        expect(card).to_have_attribute("data-connectivity", "online", timeout=15_000)
        page.route("**/api/bridge/", lambda route: route.fulfill(status=503, json={"alive": False}))
        expect(page.locator("#degraded-banner")).to_contain_text(UNREACHABLE, timeout=POLLS_FAIL_WITHIN_MS)
        expect(card).to_have_attribute("data-connectivity", "stale")
        technical = page.locator("#station-technical-alarm")
        expect(technical).to_contain_text("The server does not answer")
        expect(technical).not_to_contain_text("cannot hear the pumps")
        page.unroute("**/api/bridge/")
        expect(page.locator("#degraded-banner")).to_be_hidden(timeout=15_000)
        expect(card).to_have_attribute("data-connectivity", "online")
    finally:
        pump.close()


@contextlib.contextmanager
def database_away(cluster: postgres.PostgresCluster):
    """PostgreSQL stopped for the block (`pg_ctl stop -m fast`, as a restart or a failover stops it), then started
    again; the test's own connection is dropped before and renewed after."""
    connection.close()
    cluster.halt()
    try:
        yield
    finally:
        cluster.resume()
        close_old_connections()


def test_the_monitor_says_monitoring_is_degraded_while_the_database_is_away(open_page, stack):
    cluster = postgres.this_runs_cluster()
    if connection.vendor != "postgresql" or cluster is None:
        pytest.skip("run serially with -p tests.support.postgres: the test stops and starts that cluster")
    ward = make_ward("dbout")
    pump = pump_online(stack, "BRW_DB_OUT", ward)
    try:
        page = open_page(make_user("dbout-nurse", ward=ward), "/devices/BRW_DB_OUT/")
        expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
        expect(page.locator("#mon-connectivity")).to_have_text("Online")
        expect(page.locator("#degraded-banner")).to_be_hidden()
        page.wait_for_function("window.pumpstreamLive.devices.get('BRW_DB_OUT')?.lastSeq != null")  # subscribed
        with database_away(cluster):
            went = time.monotonic()
            pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Occlusion downstream"})
            try:
                expect_monitoring_degraded(page, within_ms=POLLS_FAIL_WITHIN_MS)
            except AssertionError as shown:
                body = page.locator("body").inner_text()[:900]
                raise AssertionError(f"{time.monotonic() - went:.0f} s into a database outage (an occlusion waiting at"
                                     f" the broker), the monitor reads: {body!r}") from shown  # fmt: skip
            answered = page.request.get(f"{stack['url']}/api/bridge/")
            assert answered.status == 503 and answered.json()["alive"] is False, (
                f"/api/bridge/ answered {answered.status} {answered.text()[:200]!r} with the database away"
            )
        expect_monitoring_healthy(page, within_ms=30_000)
        occlusion = Alarm.objects.filter(device__device_id="BRW_DB_OUT", type="occlusion")
        lost = "the occlusion that waited at the broker never applied after the database came back"
        wait_until(occlusion.exists, timeout=30, message=lost)
        expect(page.locator("#alarm-list"), "the occlusion applied is not shown").to_contain_text(
            "Occlusion", timeout=15_000
        )
    finally:
        pump.close()
