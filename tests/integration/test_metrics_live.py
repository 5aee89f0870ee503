"""Daphne's /metrics counts connected Socket.IO clients and their subscriptions, live."""

import urllib.request

import pytest
from django.core.management import call_command

from tests.factories import make_user
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def scrape(daphne_server, cookie: str) -> str:
    request = urllib.request.Request(f"{daphne_server.url}/metrics", headers={"Cookie": cookie})
    return urllib.request.urlopen(request).read().decode()


def value(body: str, prefix: str) -> float:
    return float(next(line for line in body.splitlines() if line.startswith(prefix)).split()[-1])


def test_metrics_count_connected_clients_and_subscriptions(daphne_server):
    call_command("seed_demo", password="a-test-password")
    staff = make_user("ops-staff", is_staff=True)
    cookie = session_cookie(staff)
    before = value(scrape(daphne_server, cookie), "pumpstream_realtime_clients ")
    client = StreamClient(daphne_server.url, cookie=cookie).connect()
    try:
        client.subscribe("PUMP_0001")
        body = scrape(daphne_server, cookie)
        assert value(body, "pumpstream_realtime_clients ") == before + 1
        assert value(body, 'pumpstream_realtime_subscriptions{kind="device"}') >= 1
    finally:
        client.close()


def test_metrics_show_the_change_log_and_the_publishers_lag(daphne_server):
    """A change committed in this process (another process, to Daphne) reaches the publisher: lag observed."""
    from protocol import events
    from tests.factories import make_device, make_ward
    from tests.support.bridge import wait_until
    from tests.support.changes import changes_commit

    staff = make_user("ops-staff-log", is_staff=True)
    cookie = session_cookie(staff)
    make_device("PUMP_LOG", ward=make_ward("icu"))
    client = StreamClient(daphne_server.url, cookie=cookie).connect()  # starts the publisher if nothing had
    try:
        client.subscribe("PUMP_LOG")
        lag_count = "pumpstream_realtime_publisher_lag_seconds_count "
        before = value(scrape(daphne_server, cookie), lag_count)
        changes_commit("PUMP_LOG", [(events.DEVICE_STATUS, {"status": {}})])  # no wake: the safety poll finds it
        client.events.wait_for(lambda e, d: e == events.DEVICE_STATUS and d.get("seq") == 1, timeout=5)
        body = wait_until(lambda: (b := scrape(daphne_server, cookie)) and value(b, lag_count) > before and b,
                          timeout=5, message="the publisher's lag was never observed")  # fmt: skip
        assert value(body, "pumpstream_change_log_rows ") >= 1
        assert value(body, "pumpstream_change_log_oldest_seconds ") >= 0
        assert value(body, "pumpstream_realtime_publisher_behind_entries ") == 0
    finally:
        client.close()
