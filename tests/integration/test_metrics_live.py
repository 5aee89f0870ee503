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
