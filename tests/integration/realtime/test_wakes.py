"""The road wakes its publisher at once: a bridge's commit (its `wake` on the internal road) and a page's commit
(in-process, after commit) reach a subscriber without the publisher's safety poll.

Daphne's poll is set far longer than the test waits, so a change that arrives was woken; Daphne's /metrics says by
what (`pumpstream_realtime_publisher_changes_total{woken_by=...}`). Real Mosquitto, bridge, Daphne and client.
"""

import pytest
from django.db import connection

from devices.models import Alarm
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.daphne import DaphneServer, publisher_wakes
from tests.support.sio import BrowserSession, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

POLL_S = "60"  # the publisher's safety poll: never within this test's waits
WAIT_S = 10.0


@pytest.fixture
def unpolled_daphne(django_db_setup, django_db_blocker, realtime_broker, artifacts_dir):
    """A Daphne whose publisher only reads when woken, and a bridge waking it over the internal road."""
    with django_db_blocker.unblock():
        daphne = DaphneServer(artifacts_dir, MQTT_URL=realtime_broker.url, PUBLISHER_POLL_S=POLL_S).start()
        bridge = BridgeProcess(realtime_broker.url, daphne.internal_url, artifacts_dir).start()
    yield daphne
    bridge.stop()
    daphne.stop()


def test_a_bridge_commit_and_a_page_commit_each_wake_the_publisher_without_its_poll(unpolled_daphne, realtime_broker):
    ward = make_ward("icu")
    make_device("PUMP_0001", ward=ward)
    nurse = make_user("nurse", ward=ward)
    subscriber = StreamClient(unpolled_daphne.url, cookie=session_cookie(nurse)).connect()
    pump = PumpClient(realtime_broker.url, "PUMP_0001")
    try:
        reply, _ = subscriber.subscribe("PUMP_0001")
        assert reply == events.STREAM_SUBSCRIBED
        pump.publish("error", {"type": "occlusion", "severity": "high"})  # the bridge commits it
        raised = subscriber.events.wait_for(
            lambda e, d: e == events.DEVICE_ALARM and d["alarm"]["type"] == "occlusion", timeout=WAIT_S
        )
        alarm = wait_until(lambda: Alarm.objects.filter(pk=raised["alarm"]["id"]).first(), timeout=5,
                           message="the alarm the subscriber saw is not in the database")  # fmt: skip
        BrowserSession(unpolled_daphne.url, "nurse").post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200,))
        subscriber.events.wait_for(lambda e, d: e == events.DEVICE_ALARM and d["alarm"].get("acknowledged"),
                                   timeout=WAIT_S)  # fmt: skip
    finally:
        pump.close()
        subscriber.close()
    counts = publisher_wakes(unpolled_daphne.url, session_cookie(make_user("ops", is_staff=True)))
    # On PostgreSQL every commit, the bridge's and the page's, also sends a NOTIFY, which may wake the publisher
    # before the bridge's wake or the page's in-process one (a CI run: {'notify': 5.0}); on SQLite there is none.
    notify = counts.get("notify", 0) if connection.vendor == "postgresql" else 0
    assert counts.get("bridge", 0) + notify >= 1, f"the bridge's commit did not wake the publisher: {counts}"
    assert counts.get("commit", 0) + notify >= 1, f"the page's commit did not wake the publisher: {counts}"
    assert counts.get("poll", 0) == 0, f"the publisher waited for its poll: {counts}"
