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

from django.contrib.auth.models import Group

from devices.models import Alarm
from devices.states import AlarmState
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.integration.scaleout.database_restart import (
    STOPS_THIS_RUNS_POSTGRESQL,
    cluster_to_stop,
    restart,
    ward_on_the_road,
)
from tests.support.bridge import wait_until
from tests.support.sio import session_cookie

pytestmark = STOPS_THIS_RUNS_POSTGRESQL
PUMP = "R38_ESC"
TIER_1_S = 2.0


def test_an_escalation_after_a_database_restart_reaches_the_charge_nurse(tmp_path, artifacts_dir, daphnes_on_redis):
    cluster = cluster_to_stop()
    ward = make_ward("icu")
    make_device(PUMP, ward=ward, bed="3")
    nurse = make_user("nurse", ward=ward)
    charge = make_user("charge", ward=ward)
    charge.groups.add(Group.objects.get_or_create(name="charge_nurse")[0])
    escalation_tier_1 = {"ESCALATION_HIGH_S": f"{TIER_1_S},600"}
    with ward_on_the_road(tmp_path, artifacts_dir, daphnes_on_redis, bridge_env=escalation_tier_1) as road:
        monitor = road.screen(session_cookie(nurse))
        assert monitor.subscribe(PUMP)[0] == events.STREAM_SUBSCRIBED
        charge_screen = road.screen(session_cookie(charge))

        restart(cluster)

        pump = road.pump(PUMP)
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
