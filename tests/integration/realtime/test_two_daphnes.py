"""Two Daphne processes on one PostgreSQL database: a change committed by a page on B reaches a subscriber on A.

Nothing connects the two processes but the database: B's commits NOTIFY (a trigger on the change log), A's
publisher LISTENs and reads them. A's safety poll is set far longer than the test waits, so a change that
arrives was woken by the notification, which A's /metrics also shows (`woken_by="notify"`).
"""

import pytest
from django.db import connection, transaction

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.daphne import DaphneServer, publisher_wakes
from tests.support.sio import BrowserSession, StreamClient, session_cookie

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's (make test-postgres)"),
]
POLL_S = "60"  # the publishers' safety poll: never within this test's waits
ALARMS = 3


@pytest.fixture
def two_daphnes(django_db_setup, django_db_blocker, broker, artifacts_dir):
    servers = [DaphneServer(artifacts_dir, MQTT_URL=broker.url, PUBLISHER_POLL_S=POLL_S) for _ in range(2)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def test_a_subscriber_on_one_daphne_sees_in_order_what_a_page_on_another_committed(two_daphnes):
    daphne_a, daphne_b = two_daphnes
    ward = make_ward("icu")
    make_device("PUMP_0001", ward=ward)
    nurse = make_user("nurse", ward=ward)
    with transaction.atomic():
        device = device_lock(device_id="PUMP_0001")
        alarms = [alarm_raise(device=device, type=f"occlusion_{n}", priority=AlarmPriority.HIGH,
                              source=AlarmSource.DEVICE) for n in range(ALARMS)]  # fmt: skip
    subscriber = StreamClient(daphne_a.url, cookie=session_cookie(nurse)).connect()
    try:
        reply, snapshot = subscriber.subscribe("PUMP_0001")
        assert reply == events.STREAM_SUBSCRIBED, snapshot
        browser_on_b = BrowserSession(daphne_b.url, "nurse")
        for alarm in alarms:
            browser_on_b.post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200,))
        acknowledged = [
            subscriber.events.wait_for(lambda e, d, pk=alarm.pk: e == events.DEVICE_ALARM
                                       and d["alarm"].get("acknowledged") and d["alarm"]["id"] == pk, timeout=10)
            for alarm in alarms
        ]  # fmt: skip
        # stream:subscribed, then the snapshot's events at its seq, then the live changes after it
        seqs = [
            data["seq"] for _, data in subscriber.events.device_events("PUMP_0001") if data["seq"] > snapshot["seq"]
        ]
    finally:
        subscriber.close()
    assert seqs == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + ALARMS)), f"not in order on A: {seqs}"
    assert [data["seq"] for data in acknowledged] == sorted(data["seq"] for data in acknowledged)
    counts = publisher_wakes(daphne_a.url, session_cookie(make_user("ops", is_staff=True)))
    assert counts.get("notify", 0) >= ALARMS, f"A's publisher was not woken by B's commits: {counts}"
    assert counts.get("poll", 0) == 0, f"A's publisher polled: {counts}"
