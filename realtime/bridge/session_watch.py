"""What a broker link's connections tell of its session: taken over by another client, and when the grace counts from.

Another client connecting with the link's client id takes its session: two bridges started by mistake with one
MQTT_CLIENT_ID, an old host's not stopped after a move. Each reconnected 0.5 s later and took it back, for ever, with
nothing in the log but "connection lost", and each reconnection began the reconnect grace again, so no silent pump
was judged: a pump killed mid-infusion raised no `communication_lost` (review 34). A broker that says why sends MQTT 5
DISCONNECT reason 142 "Session taken over"; Mosquitto 2.0.11 just closes the socket, so connections lost again and
again right after they were made (FLAPS within FLAP_WINDOW_S, each within QUICK_LOSS_S of its CONNACK) are taken for
the same. Either is logged at error level naming the likely cause, counted
(`pumpstream_bridge_session_taken_over_total`) and followed by a long backoff instead of a fight; while one was recent
(`contested`) the heartbeat says the broker is not held, so `/readyz`, `/ops/` and the banner say monitoring degraded,
and why.

The reconnect grace lets the backlog the broker kept arrive before silent pumps are judged. It does not begin again
(`grace_from` keeps the first connection's moment) after a takeover (the session's messages went to the other client
meanwhile: no backlog waits for this one) nor after a connection lost before it was held for the grace and regained
within it (a flapping link): so silent pumps are still judged.
"""

import logging
import time
from datetime import datetime

from django.conf import settings

from realtime import metrics

logger = logging.getLogger(__name__)

SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason: another client connected with this client id
QUICK_LOSS_S = 10.0  # a connection lost this soon after it was made is a flap
FLAPS = 3  # flaps within FLAP_WINDOW_S: taken for a takeover whose reason the broker did not send
FLAP_WINDOW_S = 60.0
TAKEOVER_BACKOFF_MIN_S = 5.0  # after a takeover: no fight every 0.5 s (doubling, jittered, up to the max)
TAKEOVER_BACKOFF_MAX_S = 60.0
# How long after a takeover the session counts as contested (monitoring degraded): twice the longest backoff, so a fight
# that goes on reads degraded throughout, and a bridge left alone reads healthy again two minutes after the last.
CONTESTED_FOR_S = 2 * TAKEOVER_BACKOFF_MAX_S


class SessionWatch:
    """One link's connections as they come and go (its thread only, read by the worker's)."""

    def __init__(self, client_id: str, *, contested_after: int = 1) -> None:
        """`contested_after`: takeovers within CONTESTED_FOR_S that make the session contested; a scale-out slot's
        link: 2, for a slot taken over once from a stalled bridge is a hand-over (`slots.py`)."""
        self.client_id = client_id
        self.contested_after = contested_after
        self.takeovers: list[float] = []  # recent takeovers (monotonic clock), told (142) or taken for one (flaps)
        self.flaps: list[float] = []
        self.grace_from: datetime | None = None  # when the reconnect grace of the current connection counts from
        self.taken_over = False  # the last connection was ended by a takeover: back off, keep the grace going
        self._lost_clock: float | None = None
        self._held_s = 0.0

    @property
    def contested(self) -> bool:
        """Whether the session was taken over `contested_after` times within CONTESTED_FOR_S."""
        return self.recent_takeovers() >= self.contested_after

    def recent_takeovers(self) -> int:
        now = time.monotonic()
        return sum(now - moment < CONTESTED_FOR_S for moment in self.takeovers)

    def connected(self, since: datetime) -> None:
        """A connection made at `since`: the grace begins again, unless this ends a takeover or a flap."""
        if self.grace_from is None or not (self.taken_over or self._flapping()):
            self.grace_from = since
        self.taken_over = False

    def lost(self, *, held_s: float, reason: int | None) -> None:
        """A connection held `held_s` ended (`reason`: the broker's DISCONNECT reason, when it sent one)."""
        now = self._lost_clock = time.monotonic()
        self._held_s = held_s
        if reason == SESSION_TAKEN_OVER:
            self._taken(now, why="the broker says another client took it")
            return
        self.flaps = [moment for moment in self.flaps if now - moment < FLAP_WINDOW_S]
        if held_s < QUICK_LOSS_S:
            self.flaps.append(now)
        if len(self.flaps) >= FLAPS:
            self.flaps = []
            self._taken(now, why=f"lost {FLAPS} times within {FLAP_WINDOW_S:.0f} s, each within {QUICK_LOSS_S:.0f} s"
                        " of connecting (or the broker or network drops it)")  # fmt: skip

    def backoff_s(self, reconnect_delay) -> float | None:
        """How long to wait before reconnecting after a takeover (doubling with each recent one), else None."""
        if not self.taken_over:
            return None
        return reconnect_delay(self.recent_takeovers() - 1, low=TAKEOVER_BACKOFF_MIN_S, high=TAKEOVER_BACKOFF_MAX_S)

    def _taken(self, now: float, *, why: str) -> None:
        self.takeovers = [moment for moment in self.takeovers if now - moment < CONTESTED_FOR_S] + [now]
        self.taken_over = True
        metrics.SESSION_TAKEN_OVER.inc()
        logger.error("broker session of client id %s taken over (%s; %d times in %.0f min): is a second bridge running"
                     " with MQTT_CLIENT_ID=%s? Run exactly one per client id. Backing off before taking it back",
                     self.client_id, why, len(self.takeovers), CONTESTED_FOR_S / 60, self.client_id,
                     extra={"reason": "session taken over"})  # fmt: skip

    def _flapping(self) -> bool:
        """The last connection was lost before it was held for the reconnect grace, and regained within it."""
        grace = settings.PUMPSTREAM["RECONNECT_GRACE_S"]
        away_s = time.monotonic() - self._lost_clock if self._lost_clock is not None else grace
        return self._held_s < grace and away_s < grace
