"""Mosquitto restarted (SIGTERM, persistence on) mid-traffic: nothing acknowledged is lost, the outage is shown."""

import logging
import time

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Alarm
from devices.selectors import bridge_status
from tests.factories import make_user, make_ward
from tests.support.bridge import wait_until
from tests.support.reliability import (
    TrafficPump,
    communication_lost_alarms,
    infusing_pumps,
    stored_status_seqs,
    wait_acknowledged_received,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

PUMPS = ["PUMP_R1", "PUMP_R2", "PUMP_R3"]
OUTAGE_S = 4.0  # longer than HEARTBEAT_TIMEOUT_S (3 s in tests): every pump looks silent when the broker is back
DEGRADED_BANNER = '<p id="degraded-banner" class="banner degraded" role="alert" >'
# The report budget stays on (the bridge's defaults): each pump sends 5 statuses a second, the budget's own rate,
# and its backlog after the outage arrives at once. With a burst of 50 the bridge shed acknowledged statuses as a
# flood (one CI run: 'budgetShed': 18); the burst now holds a pump's hour of reports (`REPORT_BUDGET_BURST`).


def degraded_everywhere(client: Client) -> bool:
    """The selector, /readyz and the overview page all say monitoring is degraded."""
    status, ready, page = bridge_status(), client.get("/readyz"), client.get("/").content.decode()
    banner_shown = 'id="degraded-banner"' in page and f"{DEGRADED_BANNER[:-2]} hidden>" not in page
    return not status["brokerConnected"] and ready.status_code == 503 and banner_shown


def test_broker_restart_mid_traffic_loses_nothing_and_shows_monitoring_degraded(own_broker, own_bridge, settings):
    settings.MQTT = {**settings.MQTT, "HOST": own_broker.host, "PORT": own_broker.port}  # what /readyz dials
    running = infusing_pumps(PUMPS)
    viewer = Client()
    viewer.force_login(make_user("viewer", ward=make_ward("icu"), can_command=False))
    assert not degraded_everywhere(viewer), "monitoring must look healthy before the outage"
    pumps = [TrafficPump(own_broker.url, device_id, running[device_id], boot_id="boot-restart") for device_id in PUMPS]
    for pump in pumps:
        pump.start()
    time.sleep(1.5)

    own_broker.stop()  # SIGTERM: Mosquitto writes its persistence file
    lost_at = time.monotonic()
    wait_until(lambda: degraded_everywhere(viewer), timeout=OUTAGE_S, message="monitoring not shown as degraded")
    degraded_after = time.monotonic() - lost_at
    time.sleep(max(0.0, OUTAGE_S - degraded_after))
    assert degraded_everywhere(viewer), "monitoring must stay degraded for the whole outage"

    own_broker.start()
    back_at = time.monotonic()
    wait_until(lambda: bridge_status()["brokerConnected"], timeout=20, message="the bridge did not reconnect")
    bridge_back = time.monotonic() - back_at
    wait_until(lambda: all(p.client.client.is_connected() for p in pumps), timeout=20, message="pumps stayed away")
    pumps_back = time.monotonic() - back_at
    time.sleep(4.0)  # past the reconnect grace and a heartbeat timeout, traffic flowing again
    stopped_at = timezone.now()  # after this, silent infusing pumps are rightly communication_lost
    for pump in pumps:
        pump.stop()

    for pump in pumps:
        wait_acknowledged_received(pump, "boot-restart", timeout=30)
        stored = stored_status_seqs(pump.device_id, "boot-restart")
        twice = sorted(seq for seq, count in stored.items() if count > 1)
        missing = sorted(set(pump.acknowledged("status")) - set(stored))
        assert not missing, f"{pump.device_id}: acknowledged statuses lost: {missing[:10]}"
        assert not twice, f"{pump.device_id}: statuses applied twice: {twice[:10]}"
    acked_total = sum(len(pump.acknowledged()) for pump in pumps)
    sent_total = sum(len(pump.sent) for pump in pumps)
    assert acked_total > 100, f"too little traffic to prove anything ({acked_total} acknowledged)"
    false_alarms = communication_lost_alarms(PUMPS, raised_by=stopped_at)
    assert not false_alarms, f"a flood of communication_lost after the broker came back: {false_alarms}"
    floods = list(Alarm.objects.filter(type="alarm_flood").values_list("device__device_id", "details"))
    assert not floods, f"the pumps' backlog after the outage was taken for a flood: {floods}"
    assert not degraded_everywhere(viewer), "monitoring must look healthy again"
    logger.warning(
        "broker restart: %d QoS 1 messages acknowledged of %d sent, 0 lost, 0 duplicated; degraded shown after %.2fs; "
        "bridge back %.2fs and pumps back %.2fs after the broker", acked_total, sent_total, degraded_after,
        bridge_back, pumps_back,
    )  # fmt: skip
