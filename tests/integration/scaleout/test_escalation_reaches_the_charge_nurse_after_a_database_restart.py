"""After a PostgreSQL restart, an unacknowledged alarm's escalation reaches the charge nurse's screen.

`server.py::deliver_escalation` (a fan-out target) reads the tier group's members on the realtime side's database
thread, whose connection stayed closed after the database restarted (review 38, F3, the same cause as F1:
`test_socketio_served_after_a_database_restart.py`): the read raised, the fan-out logged it, and `alarm:escalated`
went to nobody; the escalation existed only in the database (and in the tier's webhook, if any). Now the read goes
through `realtime/sio/database.py::db_thread`, which replaces a connection that no longer answers before it reads.

Here (PostgreSQL, Mosquitto, the real bridge with tier 1 at 2 s, Daphne) a charge nurse of the ward is connected
before the restart; PostgreSQL stops for 3 s and starts; then a high occlusion goes unacknowledged past tier 1: her
socket gets `alarm:escalated`.
"""

import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from devices.models import Alarm
from devices.states import AlarmState
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.postgres import this_runs_cluster
from tests.support.sio import StreamClient, session_cookie

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="restarts the PostgreSQL cluster of this run"),
]
PUMP = "R38_ESC"
TIER_1_S = 2.0


def test_an_escalation_after_a_database_restart_reaches_the_charge_nurse(tmp_path, artifacts_dir, daphnes_on_redis):
    cluster = this_runs_cluster()
    if cluster is None:
        pytest.skip("needs a PostgreSQL cluster of this pytest process to restart (run with -n 0)")
    ward = make_ward("icu")
    make_device(PUMP, ward=ward, bed="3")
    nurse = make_user("nurse", ward=ward)
    charge = make_user("charge", ward=ward)
    charge.groups.add(Group.objects.get_or_create(name="charge_nurse")[0])
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=False).start()
    bridge = pump = None
    clients: list[StreamClient] = []
    try:
        (daphne,) = daphnes_on_redis(1, MQTT_URL=broker.url)
        bridge = BridgeProcess(broker.url, daphne.internal_url, artifacts_dir,
                               ESCALATION_HIGH_S=f"{TIER_1_S},600").start()  # fmt: skip
        monitor = StreamClient(daphne.url, cookie=session_cookie(nurse)).connect()
        clients.append(monitor)
        assert monitor.subscribe(PUMP)[0] == events.STREAM_SUBSCRIBED
        charge_screen = StreamClient(daphne.url, cookie=session_cookie(charge)).connect()
        clients.append(charge_screen)

        cluster.halt()  # a restart, a failover: every connection terminated
        time.sleep(3)
        cluster.resume()
        connection.close()  # this test's own connection died with the server

        pump = PumpClient(broker.url, PUMP)
        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
        wait_until(lambda: Alarm.objects.filter(device__device_id=PUMP, state=AlarmState.ACTIVE,
                                                escalation_level__gte=1).exists(),
                   timeout=30, message="the bridge never escalated the alarm after the restart")  # fmt: skip
        monitor.events.wait_for(lambda e, d: e == events.DEVICE_ALARM and d["alarm"]["escalation"], timeout=10)
        time.sleep(3)
        escalated = charge_screen.events.named(events.ALARM_ESCALATED)
        assert escalated, (
            f"the charge nurse's screen never got alarm:escalated for {PUMP}'s high occlusion, escalated in the "
            f"database and on the pump's monitor (charge nurse still connected: {charge_screen.client.connected}; "
            f"her events: {[event for event, _ in charge_screen.events.items]})"
        )
    finally:
        for client in clients:
            client.close()
        if pump is not None:
            pump.close()
        if bridge is not None:
            bridge.stop()
        broker.stop()
