"""A bridge stopped on purpose (a deployment's SIGTERM) says so at once: the screens show monitoring degraded
from that moment, not `BRIDGE_STALE_AFTER_S` later when its last heartbeat has aged (the rule for a crash)."""

import time

import pytest
from django.test import Client

from devices.selectors import bridge_status
from tests.factories import make_user, make_ward
from tests.integration.reliability.test_broker_restart import degraded_everywhere

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_stopped_bridge_shows_monitoring_degraded_at_once(own_broker, own_bridge, settings):
    settings.MQTT = {**settings.MQTT, "HOST": own_broker.host, "PORT": own_broker.port}  # what /readyz dials
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_STALE_AFTER_S": 60.0}  # a crash would look alive a minute
    viewer = Client()
    viewer.force_login(make_user("viewer", ward=make_ward("icu"), can_command=False))
    assert bridge_status()["brokerConnected"] and not degraded_everywhere(viewer), "healthy before the stop"

    own_bridge.stop()  # SIGTERM; returns once the process has exited

    assert own_bridge.process.returncode == 0
    assert degraded_everywhere(viewer), "a bridge that stopped must not look alive until its heartbeat ages"
    status = bridge_status()
    assert status["brokerLostSince"] is not None, "the stop is when monitoring was lost"


def test_a_bridge_started_again_after_a_stop_is_healthy(own_broker, own_bridge, settings):
    settings.MQTT = {**settings.MQTT, "HOST": own_broker.host, "PORT": own_broker.port}
    own_bridge.stop()
    time.sleep(0.2)
    own_bridge.start()  # waits until its heartbeat says it holds the broker again
    viewer = Client()
    viewer.force_login(make_user("viewer", ward=make_ward("icu"), can_command=False))
    assert bridge_status()["brokerConnected"] and not degraded_everywhere(viewer)
