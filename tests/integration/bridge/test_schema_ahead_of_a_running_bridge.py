"""Review 36 (F3): `migrate` run for the next release while a bridge of this one still consumes (a forgotten second
host, the deploy's steps out of order), and a pump reports an occlusion.

The next release's AddField left a NOT NULL column without a database default on the alarms' table: the running
bridge's INSERT of the occlusion failed (an IntegrityError), its unreadable alarm failed the same way, and the message
was dead-lettered `internal_error` and ACKNOWLEDGED, no alarm stored. Issue 15's rule: the schema is not one message's
fault; the bridge stops acknowledging, writes no heartbeat (monitoring degraded) and retries until its code matches
the schema (here the column goes again, as the bridge would be upgraded). SQLite and PostgreSQL
(`-p tests.support.postgres`).
"""

import time

import pytest
from django.db import close_old_connections

from devices.models import Alarm, BridgeStatus, DeadLetter
from devices.states import AlarmState
from tests.integration.bridge.test_new_code_before_migrate import _infusing
from tests.realtime.bridge.test_schema_ahead_of_the_code import _next_releases_column
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _cause_said(bridge) -> bool:
    return "database schema ahead of the code" in bridge.log_tail(200)


def _heartbeat_at(name: str):
    close_old_connections()
    return BridgeStatus.objects.filter(name=name).values_list("heartbeat_at", flat=True).first()


def test_an_occlusion_met_by_the_next_releases_column_is_kept_and_applied_once_the_code_matches(broker, artifacts_dir):
    device_id = "PUMP_AHEAD36"
    bridge, sim, _forward_to = _infusing(broker, device_id, artifacts_dir)
    occlusions = Alarm.objects.filter(device__device_id=device_id, type="occlusion", state=AlarmState.ACTIVE)
    # this pump's: the session's broker keeps other tests' retained messages, of pumps this test never registered
    # (`unknown_device` letters, in a run where this module followed theirs on the worker)
    its_letters = DeadLetter.objects.filter(source=device_id)
    try:
        with _next_releases_column():
            sim.type("error occlusion")  # at the pump: an occlusion (it pauses), as its firmware reports it
            wait_until(lambda: _cause_said(bridge) or its_letters.exists(), timeout=20,
                       message=f"the occlusion went nowhere:\n{bridge.log_tail()}")  # fmt: skip
            stalled_at = _heartbeat_at(bridge.name)
            time.sleep(4)  # the operator finds the old bridge still running (the heartbeat goes stale after 3 s)
            heartbeat_at = _heartbeat_at(bridge.name)
            letters = sorted(its_letters.values_list("reason", "detail"))
            assert not letters and not occlusions.exists(), (
                f"dead-lettered (and acknowledged) for the schema ahead of the code, no alarm stored:"
                f" {[(reason, detail[:90]) for reason, detail in letters]}"
            )
            assert _cause_said(bridge), f"the log names the cause:\n{bridge.log_tail()}"
            assert heartbeat_at == stalled_at, "a stalled bridge must write no heartbeat (monitoring degraded)"
        wait_until(occlusions.exists, timeout=30,
                   message=f"the occlusion kept by the broker was never applied:\n{bridge.log_tail(15)}")  # fmt: skip
        assert not its_letters.exists(), list(its_letters.values_list("reason", "detail"))
    finally:
        sim.stop()
        bridge.stop()
