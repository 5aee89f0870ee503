"""Review 34 (F2): the database's schema behind the bridge's code while a pump reports an occlusion.

A deploy in the wrong order (new code started, then `manage.py migrate`), or systemd restarting a crashed bridge onto
code installed but not migrated yet. On PostgreSQL a missing column is a ProgrammingError (UndefinedColumn), which the
bridge took for a fault of the message: the occlusion and the pump's `paused` status were dead-lettered
`internal_error` (their dead letters failed too, "dead letter not stored") and ACKNOWLEDGED; after `migrate` the
screens showed the infusion running and no occlusion. Issue 15's rule: a failure that is not about one message
(database down, locked, schema behind the code) is never dead-lettered; the bridge stops acknowledging and retries.
On SQLite the same fault is an OperationalError ("no such column"): the tests run on both (`-p tests.support.postgres`).
"""

import contextlib
import time

import pytest
from django.core.management import call_command
from django.db import close_old_connections

from devices.models import Alarm, BridgeStatus, DeadLetter, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import BridgeProcess, wait_until
from tests.support.processes import free_port
from tests.support.simulator import SimulatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
BEFORE = "0033_device_booted_at"  # the previous release's schema: 0034 adds a column of the infusions' table


def _infusing(broker, device_id: str, artifacts_dir) -> tuple[BridgeProcess, SimulatorProcess, str]:
    """A bridge and an interactive simulated pump running an infusion; returns them and the forwarding URL."""
    make_device(device_id, has_presence=True)
    forward_to = f"http://127.0.0.1:{free_port()}"
    bridge = BridgeProcess(broker.url, forward_to, artifacts_dir).start()
    sim = SimulatorProcess(broker.url, device_id, log_dir=artifacts_dir).start(interactive=True)
    wait_until(lambda: Device.objects.get(device_id=device_id).last_seen_at is not None, timeout=20,
               message=f"the pump never reported:\n{sim.log_tail()}")  # fmt: skip
    session = infusion_start(device_id=device_id, order=make_order())
    wait_until(lambda: sim.type("start") or InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING,
               timeout=20, interval=1, message=f"the infusion never ran:\n{sim.log_tail()}")  # fmt: skip
    return bridge, sim, forward_to


def _occlusion_applied_once_migrated(device_id: str, bridge: BridgeProcess) -> None:
    """`migrate`, then the occlusion sent meanwhile must reach the database, no message having been dead-lettered."""
    close_old_connections()
    call_command("migrate", "devices", verbosity=0)
    occlusions = Alarm.objects.filter(device__device_id=device_id, type="occlusion", state=AlarmState.ACTIVE)
    deadline = time.monotonic() + 30  # the bridge looks again every 2 s, then gets what the broker kept
    while not occlusions.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
        close_old_connections()
    letters = DeadLetter.objects.filter(reason="internal_error")
    topics = sorted(set(letters.values_list("topic", flat=True)))
    alarms = sorted(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
                    .values_list("type", flat=True))  # fmt: skip
    assert occlusions.exists(), (
        f"the occlusion sent while the schema was behind the code was never applied once migrated; dead letters"
        f" internal_error: {letters.count()} (acknowledged), on {topics}; the pump's active alarms: {alarms};"
        f" bridge log:\n{bridge.log_tail(15)}"
    )
    assert not letters.exists(), f"messages dead-lettered for the database's schema: {topics}"


@contextlib.contextmanager
def _schema_of_the_previous_release():
    """The devices tables as the previous release left them for the block; this code's again after it, whatever
    happened (`migrate` forward is a no-op once the block has run it)."""
    call_command("migrate", "devices", BEFORE, verbosity=0)
    try:
        yield
    finally:
        close_old_connections()
        call_command("migrate", "devices", verbosity=0)


def test_an_occlusion_sent_between_the_new_codes_start_and_migrate_is_applied_once_migrated(broker, artifacts_dir):
    device_id = "PUMP_DEPLOY34"
    bridge, sim, forward_to = _infusing(broker, device_id, artifacts_dir)
    new_bridge = None
    try:
        bridge.stop()  # the deployment: the old bridge stopped ...
        with _schema_of_the_previous_release():  # (the database as the old release left it)
            new_bridge = BridgeProcess(
                broker.url, forward_to, artifacts_dir, MQTT_CLIENT_ID=bridge.client_id, name=bridge.name
            ).start(wait=False)  # ... the new code started before migrate
            sim.type("error occlusion")  # at the pump: an occlusion (it pauses), as its firmware reports it
            time.sleep(5)  # the operator types `manage.py migrate`
            close_old_connections()
            held = BridgeStatus.objects.filter(name=bridge.name).values_list("broker_connected", flat=True).first()
            _occlusion_applied_once_migrated(device_id, new_bridge)
        assert held is False, (
            f"before migrate the heartbeat must say the broker is not held (monitoring degraded): {held}"
        )
    finally:
        sim.stop()
        if new_bridge is not None:
            new_bridge.stop()
        bridge.stop()


def test_an_occlusion_sent_while_a_running_bridges_schema_went_back_is_applied_once_migrated(broker, artifacts_dir):
    """The running bridge meets the missing column on its statements (not at its start): the database's fault,
    retried unacknowledged, never the message's (a schema put back under a running bridge: a release rolled back)."""
    device_id = "PUMP_DEPLOY34B"
    bridge, sim, _forward_to = _infusing(broker, device_id, artifacts_dir)
    try:
        with _schema_of_the_previous_release():
            sim.type("error occlusion")
            time.sleep(5)  # the operator notices and runs `manage.py migrate`
            _occlusion_applied_once_migrated(device_id, bridge)
        assert "schema behind the code" in bridge.log_tail(200), f"the log names the cause:\n{bridge.log_tail()}"
    finally:
        sim.stop()
        bridge.stop()
