"""The database locked for seconds under QoS 1 traffic: the bridge retries unacknowledged and loses nothing."""

import logging
import sqlite3
import time

import pytest
from django.conf import settings

from tests.support.bridge import BridgeProcess, wait_until
from tests.support.processes import free_port
from tests.support.reliability import TrafficPump, infusing_pumps, received_seqs, stored_status_seqs

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

LOCK_S = 4.0


def test_database_locked_mid_traffic_bridge_retries_and_loses_nothing(own_broker, artifacts_dir):
    running = infusing_pumps(["PUMP_L1"])
    # A busy timeout far shorter than the lock, so the bridge's commits fail and take the retry path.
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           SQLITE_BUSY_TIMEOUT_S="1").start()  # fmt: skip
    pump = TrafficPump(own_broker.url, "PUMP_L1", running["PUMP_L1"], boot_id="boot-locked", interval_s=0.05)
    try:
        pump.start()
        wait_until(lambda: len(received_seqs("PUMP_L1", "boot-locked")) > 10, message="no traffic before the lock")
        blocker = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None, timeout=10)
        blocker.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        sent_before_lock = len(pump.sent)
        time.sleep(LOCK_S)
        stored_during_lock = len(received_seqs("PUMP_L1", "boot-locked"))  # WAL: reading still works
        blocker.execute("ROLLBACK")
        blocker.close()
        unlocked_at = time.monotonic()
        wait_until(lambda: len(received_seqs("PUMP_L1", "boot-locked")) > stored_during_lock + 5, timeout=15,
                   message="the bridge did not resume after the lock")  # fmt: skip
        resumed_after = time.monotonic() - unlocked_at
        time.sleep(1.0)
    finally:
        pump.stop()
        bridge_log = bridge.log_tail(400)
        bridge.stop()
    acked = pump.acknowledged()
    wait_until(lambda: set(acked) <= received_seqs("PUMP_L1", "boot-locked"), timeout=20,
               message="acknowledged messages missing after the lock")  # fmt: skip
    stored = stored_status_seqs("PUMP_L1", "boot-locked")
    missing = sorted(set(pump.acknowledged("status")) - set(stored))
    twice = sorted(seq for seq, count in stored.items() if count > 1)
    assert "not committed" in bridge_log and "retrying" in bridge_log, "the lock never made a batch fail and retry"
    assert len(pump.sent) > sent_before_lock + 40, "the pump must keep publishing during the lock"
    assert not missing, f"acknowledged statuses lost: {missing[:10]}"
    assert not twice, f"statuses applied twice: {twice[:10]}"
    logger.warning(
        "database locked %.1fs: %d QoS 1 messages acknowledged, 0 lost, 0 duplicated; %d batch retries logged; "
        "bridge resumed %.2fs after the unlock", unlocked_at - locked_at, len(acked),
        bridge_log.count("not committed"), resumed_after,
    )  # fmt: skip
