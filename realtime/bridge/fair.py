"""Fair batches: one pump's flood never stands between another pump's message and its commit.

Each turn the worker moves every message its inbox holds into a `FairQueue`, which has each one admitted
or shed once, in arrival order (`BatchIngest.admit`: the progress guard and the pump's budgets, on the raw
message). A pump is *flooding* in a turn when any of its messages was shed or more than `per_pump` of its
admitted messages wait, and stays so until its admitted messages waiting then are all committed. A turn
then commits up to three batches, each acknowledged after its own commit:

1. the other pumps' messages, all of each pump's in arrival order (up to `max_messages` in all);
2. what was shed: no work per message, the batch counts them into one `alarm_flood` per pump, so a
   flood's excess is acknowledged in the turn after it arrived and the broker's window (Receive Maximum)
   opens again for the other pumps' messages queued behind it;
3. the flooding pumps' admitted share: each one's oldest admitted message, or an eighth of them
   (`FLOODING_SHARE`) when more wait, so that a backlog cannot grow without bound (the budgets let a few
   through each turn: their burst, and the newest report of each kind, at most once a second).

A report the budgets hold back (`budgets.py`: the newest of its kind over them, whose exemption passed less than a
second ago), or a routine progress the progress guard holds back likewise (`flood.py`), waits undecided in its place
among its pump's admitted messages, and is given to the budgets and the guard again with each turn's intake until it
passes or a newer one of its kind sheds it; its pump's later messages wait behind it
(its order kept), the other pumps' do not.

What a turn leaves waits, unacknowledged and in order, for the next turn. So another pump's message waits
for at most one flooding share's commit. A flooding pump's admitted messages are applied in their order;
its `alarm_flood` may count messages that arrived after some of them (it alarms sooner, never later).
"""

import itertools
import time
from collections import deque
from datetime import datetime

from protocol import topics
from realtime.bridge.batch import BatchIngest
from realtime.bridge.ingest import InboundMessage

PER_PUMP = 20  # more admitted messages than this waiting from one pump: it is flooding
FLOODING_SHARE = 8  # a flooding pump has its oldest admitted message applied per turn, or 1/8 of them if more

Item = tuple[int, InboundMessage]  # (arrival number, message)


class FairQueue:
    """Messages received and not yet handed to a commit, per pump, in arrival order."""

    def __init__(self, ingest: BatchIngest, *, per_pump: int = PER_PUMP) -> None:
        self.ingest = ingest
        self.per_pump = per_pump
        self.admitted: dict[str, deque[Item]] = {}
        self.shed: dict[str, list[Item]] = {}
        self.flooding: set[str] = set()  # flooding pumps with admitted messages still waiting
        self.flooding_this_turn: frozenset[str] = frozenset()  # the pumps `take` found flooding (last turn)
        self.held: dict[str, list[Item]] = {}  # per pump, its reports held back (also among its admitted, in place)
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        return sum(map(len, self.admitted.values())) + sum(map(len, self.shed.values()))

    def add(self, messages: list[InboundMessage], *, now: float | None = None) -> None:
        """Admit or shed each message (once, in arrival order) and keep it with its pump's; the held reports are
        decided again first (`now`: the turn's clock, epoch seconds)."""
        held = sorted(item for items in self.held.values() for item in items)
        self.ingest.admit([*(message for _, message in held), *messages], now=time.time() if now is None else now)
        self.held = {}
        for item in held:
            self._file(item, fresh=False)
        for message in messages:
            self._file((next(self._arrivals), message), fresh=True)

    def _file(self, item: Item, *, fresh: bool) -> None:
        """Keep a decided or held message with its pump's (a held one, already among its admitted, stays there)."""
        message = item[1]
        sender = message_sender(message)
        if message.shed is None:
            self.held.setdefault(sender, []).append(item)
        if message.shed:
            self.shed.setdefault(sender, []).append(item)
            if not fresh:
                self.admitted[sender].remove(item)
        elif fresh:
            self.admitted.setdefault(sender, deque()).append(item)

    def ready(self) -> bool:
        """Whether a turn would take anything now (held reports alone wait for a later turn's clock)."""
        return bool(self.shed) or any(self._ready(sender) for sender in self.admitted)

    def _ready(self, sender: str) -> int:
        """How many of the pump's admitted messages may be taken: those before its oldest held report."""
        items = self.admitted[sender]
        if sender not in self.held:
            return len(items)
        first_held = min(self.held[sender])
        return next((index for index, item in enumerate(items) if item == first_held), len(items))

    def oldest_received(self, device_id: str) -> datetime | None:
        """When the oldest message of this pump still waiting here reached the bridge (None: none waits)."""
        items = [*self.admitted.get(device_id, ()), *self.shed.get(device_id, ())]
        return min((message.received_at for _, message in items), default=None)

    def take(self, *, max_messages: int) -> list[list[InboundMessage]]:
        """The turn's batches, in commit order, each in arrival order: the calm pumps' messages, the flooding
        pumps' shed ones, their admitted share; empty ones left out. The rest keeps waiting, in order."""
        crowded = {sender for sender, items in self.admitted.items() if len(items) > self.per_pump}
        flooding = self.flooding | set(self.shed) | crowded | set(self.held)
        self.flooding_this_turn = frozenset(flooding)
        ready = {sender: self._ready(sender) for sender in self.admitted}
        calm = sorted(item for sender, items in self.admitted.items() if sender not in flooding
                      for item in itertools.islice(items, ready[sender]))  # fmt: skip
        calm = calm[:max_messages]  # by arrival: each pump's taken messages are the oldest of its own
        for _, message in calm:
            self.admitted[message_sender(message)].popleft()
        shed = sorted(item for items in self.shed.values() for item in items)
        self.shed = {}
        share = sorted(
            self.admitted[sender].popleft()
            for sender in flooding & set(self.admitted)
            for _ in range(min(ready[sender], max(1, len(self.admitted[sender]) // FLOODING_SHARE)))
        )
        self.admitted = {sender: items for sender, items in self.admitted.items() if items}
        self.flooding = flooding & set(self.admitted)
        return [[message for _, message in batch] for batch in (calm, shed, share) if batch]


def message_sender(message: InboundMessage) -> str:
    """The device id segment of the topic (`devices/{id}/...`), or the whole topic for anything else."""
    parts = message.topic.split("/")
    return parts[1] if len(parts) == 3 else message.topic


def holds_calm_alarm(batch: list[InboundMessage], flooding: frozenset[str]) -> bool:
    """Whether the batch applies an alarm (an admitted `error`) of a pump not in `flooding`."""
    return any(message.shed == "" and message.topic.rpartition("/")[2] == topics.ERROR
               and message_sender(message) not in flooding for message in batch)  # fmt: skip
