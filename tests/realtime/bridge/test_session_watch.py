"""Review 34 (F3): a broker link's session taken over by another client with its client id is told, counted, backed
off from and reported as contested; flapping connections do not begin the reconnect grace again and again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from realtime import metrics
from realtime.bridge.link import reconnect_delay
from realtime.bridge.session_watch import (
    FLAPS,
    QUICK_LOSS_S,
    SESSION_TAKEN_OVER,
    TAKEOVER_BACKOFF_MIN_S,
    SessionWatch,
)


def taken_over_total() -> float:
    return next(iter(metrics.SESSION_TAKEN_OVER.collect())).samples[0].value


def test_a_session_taken_over_is_logged_naming_the_client_id_counted_backed_off_from_and_contested(caplog):
    watch = SessionWatch("pumpstream-bridge")
    watch.connected(timezone.now())
    before = taken_over_total()
    watch.lost(held_s=120.0, reason=SESSION_TAKEN_OVER)
    assert watch.contested, "a single bridge's session taken over: monitoring degraded"
    assert taken_over_total() == before + 1
    assert watch.backoff_s(reconnect_delay) >= TAKEOVER_BACKOFF_MIN_S, "no fight every 0.5 s"
    told = [record for record in caplog.records if record.levelname == "ERROR"]
    assert told and "MQTT_CLIENT_ID=pumpstream-bridge" in told[0].getMessage(), told


def test_a_slot_taken_over_once_is_a_hand_over_twice_is_contested():
    watch = SessionWatch("pumpstream-bridge-1", contested_after=2)
    watch.lost(held_s=120.0, reason=SESSION_TAKEN_OVER)
    assert not watch.contested, "a slot taken over once from a stalled bridge is a hand-over"
    watch.connected(timezone.now())
    watch.lost(held_s=6.0, reason=SESSION_TAKEN_OVER)
    assert watch.contested


@pytest.mark.parametrize("losses, contested", [(FLAPS - 1, False), (FLAPS, True)])
def test_connections_dropped_again_and_again_right_after_they_were_made_are_taken_for_a_takeover(losses, contested):
    """Mosquitto 2.0.11 closes the taken session's socket without a DISCONNECT reason."""
    watch = SessionWatch("pumpstream-bridge")
    for _ in range(losses):
        watch.connected(timezone.now())
        watch.lost(held_s=0.5, reason=None)
    assert watch.contested is contested
    assert (watch.backoff_s(reconnect_delay) is not None) is contested


def test_a_slot_link_flapping_once_is_not_contested_twice_is():
    watch = SessionWatch("pumpstream-bridge-0", contested_after=2)
    for round_ in (1, 2):
        for _ in range(FLAPS):
            watch.connected(timezone.now())
            watch.lost(held_s=0.5, reason=None)
        assert watch.contested is (round_ == 2)


def test_connections_held_long_and_lost_are_no_flaps():
    watch = SessionWatch("pumpstream-bridge")
    for _ in range(FLAPS + 1):
        watch.connected(timezone.now())
        watch.lost(held_s=QUICK_LOSS_S + 1, reason=None)
    assert not watch.contested and watch.backoff_s(reconnect_delay) is None


def test_the_reconnect_grace_runs_on_through_a_takeover_and_a_flap_and_begins_again_after_a_held_connection(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "RECONNECT_GRACE_S": 2.0}
    first = timezone.now() - timedelta(minutes=5)
    watch = SessionWatch("pumpstream-bridge")
    watch.connected(first)
    watch.lost(held_s=300.0, reason=SESSION_TAKEN_OVER)
    watch.connected(timezone.now())
    assert watch.grace_from == first, "the session's messages went to the other client: no backlog to wait for"
    watch.lost(held_s=0.5, reason=None)  # a flap, regained at once
    watch.connected(timezone.now())
    assert watch.grace_from == first, "a flapping link must not hold the silence checks for ever"
    watch.lost(held_s=3.0, reason=None)  # held past the grace: a real loss, its backlog waits at the broker
    again = timezone.now()
    watch.connected(again)
    assert watch.grace_from == again
