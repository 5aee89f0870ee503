"""When the bridge's housekeeping checks run: every check each round after a commit, else asleep until its next
deadline can come. The worker spreads a round (every `housekeeping_s`) over PARTS of its ticks, a part of the
checks each (`part_checks`); a commit wakes every check, and each part's checks run at the part's next turn (not
ask: the stale check's question does not cover what its run does, forget the pumps heard again; review 51).

An idle bridge does not ask the database every tick (issue 17: at most 1 % of a core with no traffic). On a
tick when nothing was committed since the last one, each check first asks whether anything of its kind falls
due within its horizon (half its shortest timeout, at most `SLEEP_MAX_S`); if nothing does, nothing is due now
either, and it sleeps until then without running. No deadline is missed for it, because each is born at least
its timeout away: a start times out CONFIRMATION_TIMEOUT_S after its START was published (or created), a
command at its `expires_at` (its lifetime after it was queued, a START's after it was published: both commits of
this bridge), a running pump falls silent HEARTBEAT_TIMEOUT_S after it was last heard,
an alarm reminds or escalates its interval after it was acknowledged or alerted (a flood alarm's news may wait less
than its interval, begun earlier, but the flood that left it waiting committed a change, which wakes every check; a
flood alarm's counts held unsent, due within a second, are held only by this bridge's commit, which wakes them too);
whatever appears while a check sleeps falls due after it wakes, and the check's own question covers what was
already there. Everything
wakes when this bridge commits (a message heard a while ago may carry an older moment), when any process commits
a change of a pump (the change log's newest id moved: a page resolving an alarm of a pump still silent, a start
whose lock wait made its moment old, an alarm to escalate at once), when the broker link changes and while a
webhook is under way; a scale-out leader never sleeps (`shared.py`). On PostgreSQL a change whose id is lower
than one already seen can commit after it and go unnoticed: the check then wakes at its horizon, as before.

The graces that hold the checks judging what was not heard (after a reconnection, after a stall of the bridge) run on
the monotonic clock, never the wall clock: a wall clock stepped (a wrong NTP source, an RTC read wrong at boot, then
put right) must not hold them for as long as it was wrong (review 29: one turn an hour ahead held every silence
check for the hour).
"""

import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError

from devices.changelog_selectors import change_log_newest_id

logger = logging.getLogger(__name__)
SLEEP_MAX_S = 30.0  # the longest an idle check sleeps, whatever its timeouts
# A round of the checks is spread over this many of the worker's ticks, a part each (`part_checks`): run at once,
# the ten checks' reads held the worker 12 ms every half second at 400 pumps (bench/alarm_history.py, 2026-12-07), and
# each message arriving meanwhile waited behind them (issue 17: the steady phase's p99).
PARTS = 5
# Checks that judge a pump by what the bridge has not heard: while it holds no broker link, and for the reconnect
# grace after (the pumps' queued messages arrive), not hearing a pump says nothing about it; nor for the grace after
# the bridge itself was stalled (`resumed_clock`: what the pumps sent meanwhile waited at the broker, unread).
HELD_UNTIL_SETTLED = ("silence", "starts", "unverified", "presence")
# A check: what it does (True: its page was full), whether anything of its kind falls due by a moment, its timeouts.
Check = tuple[Callable[[datetime], bool], Callable[[datetime], bool], Callable[[], list[float]]]


def timeouts(*names: str) -> Callable[[], list[float]]:
    """The timeouts these settings name, read when asked (tests change the settings)."""
    return lambda: [float(settings.PUMPSTREAM[name]) for name in names]


def part_checks(checks: dict[str, Check], parts: Collection[int] | None) -> dict[str, tuple[int, Check]]:
    """The checks of the parts `parts` of PARTS (every PARTS-th, in their order), or all of them (`parts` None),
    each with its part."""
    indexed = ((index % PARTS, name, check) for index, (name, check) in enumerate(checks.items()))
    return {name: (part, check) for part, name, check in indexed if parts is None or part in parts}


def round_begins(parts: Collection[int] | None) -> bool:
    """Whether a tick of these parts (None: every check) begins a round of the checks: what is read once a round
    (the change log's newest id, its prune, the moments still to come, a scale-out leader's leases) is read then."""
    return parts is None or 0 in parts


def horizon_s(seconds: list[float]) -> float:
    """How far ahead a check looks before it sleeps: half the shortest timeout of its kind, at most SLEEP_MAX_S."""
    return min([SLEEP_MAX_S, *(value / 2 for value in seconds if value > 0)])


class CheckSchedule:
    """Runs the checks a subclass names in `checks`: each guarded, each asleep while nothing of its kind can fall due;
    those judging what was not heard wait a grace period after the broker link returns."""

    may_sleep = True  # an idle check may skip ticks until its next deadline can come (the module's docstring)

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.asleep_until: dict[str, datetime] = {}  # per check, while nothing of its kind can fall due
        self.committed = True  # this bridge committed since the last tick (the worker says so)
        self.connected_since: datetime | None = None
        # The link's connection as this schedule first saw it: (monotonic clock then, seconds of the grace already
        # past by the wall clock then, at least 0): the rest of the grace runs on the monotonic clock.
        self.connected_seen: tuple[float, float] | None = None
        self.newest_change = 0  # the change log's newest id at the last tick
        # The parts not run since every check was last woken: their checks run at their turn, not only ask.
        self.woken_parts: set[int] = set()
        self.behind = False  # a check's page was full at the last tick: more may be due now (the worker hurries)
        # When the bridge last came back from a stall, on the monotonic clock (the worker says so: `note_stall`).
        self.resumed_clock: float | None = None

    def tick(
        self,
        now: datetime,
        *,
        connected_since: datetime | None,
        clock: float | None = None,
        parts: Collection[int] | None = None,
    ) -> None:
        """Run every check that is awake once, or only those of the parts `parts` (of PARTS, `part_checks`: the
        worker spreads a round of the checks over PARTS of its ticks; part 0 also asks whether any process committed
        and prunes the log); `clock` is the monotonic clock's reading (the worker's), `now` the wall clock's, which
        the checks judge by."""
        clock = time.monotonic() if clock is None else clock
        whole_round = round_begins(parts)
        newest_change = (change_log_newest_id() if self.may_sleep else 0) if whole_round else self.newest_change
        relinked = connected_since != self.connected_since
        if relinked:
            past_s = None if connected_since is None else max(0.0, (now - connected_since).total_seconds())
            self.connected_seen = None if past_s is None else (clock, past_s)
        if self.committed or newest_change != self.newest_change or relinked or not self.may_sleep:
            self.asleep_until.clear()
            self.woken_parts = set(range(PARTS))
        self.committed, self.newest_change, self.connected_since = False, newest_change, connected_since
        self.behind = False
        settled = self.link_settled(clock)
        woken_parts = self.woken_parts
        self.woken_parts = set() if parts is None else woken_parts - set(parts)
        for name, (part, (check, due_by, timeouts)) in part_checks(self.checks, parts).items():
            if name in HELD_UNTIL_SETTLED and not settled:
                continue
            if now < self.asleep_until.get(name, now):
                continue
            if part not in woken_parts:  # what is due now is due by `ahead` too: nothing by then, nothing to do now
                ahead = now + timedelta(seconds=horizon_s(timeouts()))
                if not due_by(ahead):
                    self.asleep_until[name] = ahead
                    continue
            self.behind = self.check_run(name, check, now) or self.behind
        if whole_round:
            self.change_log_prune(now)

    def link_settled(self, clock: float) -> bool:
        """Whether not hearing a pump says something: the broker link held for the reconnect grace, and the bridge
        reading it for as long since its last stall. The grace runs on the monotonic clock from when a tick first saw
        the connection, less what the wall clock then said had already passed of it (a connection of long ago is
        settled at once; one the wall clock puts still to come, a clock put back since, has none of it behind it)."""
        if self.connected_seen is None:
            return False
        seen_clock, past_s = self.connected_seen
        return clock - seen_clock + past_s >= settings.PUMPSTREAM["RECONNECT_GRACE_S"] and self.stall_over(clock)

    def stall_over(self, clock: float) -> bool:
        """Not within the reconnect grace after the bridge's last stall (`worker.Bridge.note_stall`), on the monotonic
        clock (`clock`): a wall clock stepped since cannot lengthen it."""
        grace = settings.PUMPSTREAM["RECONNECT_GRACE_S"]
        return self.resumed_clock is None or clock - self.resumed_clock >= grace

    def check_run(self, name: str, check: Callable[[datetime], bool], now: datetime) -> bool:
        """One check, guarded: its own fault is logged and the checks after it still run (silence after a failing
        command check); the database's is the whole tick's (the worker). A row's own fault is its row's
        (`self.rows`): the check's other rows are handled."""
        try:
            return check(now)
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.exception("housekeeping check failed", extra={"check": name})
            return False
