"""Escalation webhook outcomes as housekeeping records them: each on its own, kept while it cannot be recorded.

While the database is unavailable (locked, connection lost) an outcome is kept however long that lasts. Any other
failure is this outcome's own (a row the code cannot store): after UNRECORDED_TICKS_MAX such ticks it is given up
(`escalation_delivery_give_up`: the delivery ends as the post did, a dead letter says why, counted) instead of
being retried and logged every tick for ever with its page neither posted nor dead-lettered. Should giving it up
fail too, that is a row of the check `outcomes` (`rows.py`): logged once at error level with the delivery's id,
counted, tried again after a doubling delay (at most 5 min) and dead-lettered after 5 failures; its page is not
posted again meanwhile (it may have gone out).
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import InterfaceError, OperationalError

from devices.services.deliveries import escalation_delivery_give_up, escalation_delivery_record
from realtime import metrics
from realtime.bridge.rows import RowGuard
from realtime.bridge.webhooks import Outcome

logger = logging.getLogger(__name__)

UNRECORDED_TICKS_MAX = 10  # ticks a webhook outcome that fails to be recorded (not for the database) is kept


@dataclass
class Unrecorded:
    """A webhook outcome not recorded yet: the ticks its recording failed for itself, and whether that was logged."""

    outcome: Outcome
    failures: int = 0
    logged: bool = False


def outcome_record(unrecorded: Unrecorded, now: datetime, rows: RowGuard) -> bool:
    """Record one webhook outcome (or give it up, see above); False when it is kept for the next tick."""
    delivery_id, delivered, error = unrecorded.outcome
    extra = {"delivery_id": delivery_id, "delivered": delivered}
    try:
        if unrecorded.failures < UNRECORDED_TICKS_MAX:
            escalation_delivery_record(delivery_id=delivery_id, delivered=delivered, error=error, now=now)
            return True
        return bool(rows.run("outcomes", delivery_id, partial(_give_up, unrecorded, now), now))
    except (OperationalError, InterfaceError):  # the database, not this outcome: kept, not counted
        if not unrecorded.logged:
            logger.warning("escalation webhook outcome not recorded yet: database unavailable", extra=extra)
    except Exception:  # this outcome's own failure: kept for the next tick, given up after a bound
        unrecorded.failures += 1
        if not unrecorded.logged:
            logger.exception("escalation webhook outcome not recorded yet", extra=extra)
    unrecorded.logged = True
    return False


def _give_up(unrecorded: Unrecorded, now: datetime) -> int:
    delivery_id, delivered, error = unrecorded.outcome
    escalation_delivery_give_up(delivery_id=delivery_id, delivered=delivered, error=error,
                                why="its outcome could not be recorded", now=now)  # fmt: skip
    metrics.ESCALATION_OUTCOMES_GIVEN_UP.inc()
    logger.error("escalation webhook outcome given up", extra={"delivery_id": delivery_id, "delivered": delivered,
                                                               "tries": unrecorded.failures})  # fmt: skip
    return 1
