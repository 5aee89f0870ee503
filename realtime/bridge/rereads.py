"""A pump registered while it is connected: its retained status read again from the broker once it is registered.

The bridge turns away every message of a pump not registered (`unknown_device`, dead-lettered). A pump with presence
says `online` once, retained, as it connects, and nothing more while idle: registered afterwards (the operations
guide's remedy for such dead letters), it read "Never heard" on every screen for as long as it stayed idle, while the
broker held its `online` (review 30, finding 2). The bridge's subscriptions hand retained copies over only when they
are made, and nothing told the bridge of the registration: it learns of it here, from the pumps it turned away.

Each pump turned away is remembered (the newest `LIMIT`), with when the server last heard it itself: the receive time
of its newest message sent live (not a retained copy the broker handed over, not an `offline`: the broker speaking for
it). Every `CHECK_EVERY_S`, while any is remembered, one query asks which of them are registered now; for each, the
link subscribes to its status topics once more (`BrokerLink.statuses_reread`), and the broker's retained copies that
arrive for it within `WINDOW_S` are applied as heard at that remembered moment, not at their arrival: a copy is what
the broker kept, not the pump heard now (`pumps._pump_seen`). So the pump reads "Online" (presence) with its true last
heard, or, of the original firmware, "Stale" as long ago as it was last heard. The bridge restarted between the pump's
connection and its registration: its start's subscription hands the copies over, applied as heard at their arrival,
as any retained copy first seen then (the leftover `docs/protocol.md` names).

An `offline` turned away after the pump's last live message (its Last Will, not retained, or its own goodbye) is
remembered too (`Heard.gone_at`): the server heard the pump go away, while the broker still holds the `online` it
retained as it connected. The copies read again carry it, and are applied as after that `offline` (`pumps._pump_seen`):
the pump reads "Offline" when the copy is older than that `offline` (it comes on the connection that heard it, so
whatever the pump said since came live, and nothing did; or the broker kept the bridge's session and the copy is
QoS 1), else not vouched for ("Stale" by its last heard); never "Online".
"""

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from devices.ingest_selectors import device_pks_by_id
from protocol import topics
from realtime.bridge.ingest import InboundMessage

logger = logging.getLogger(__name__)

LIMIT = 1000  # pumps remembered at once: the newest turned away (a stray device id each second would grow it)
CHECK_EVERY_S = 1.0  # how often the remembered pumps are looked up while there are any
WINDOW_S = 30.0  # how long after a re-read a retained status of the pump is taken as its copy


class Heard(NamedTuple):
    """What the server heard of a pump it turned away: when it last heard the pump itself (`at`; None: only the
    broker), and when it then heard it told gone (`gone_at`: an `offline` received after that; None: none since), on
    which of the link's connections (`gone_on`, `InboundMessage.generation`)."""

    at: datetime | None = None
    gone_at: datetime | None = None
    gone_on: int | None = None

    def hearing(self, received_at: datetime) -> "Heard":
        """A live message of the pump itself: heard then, and no longer gone if it came after the `offline`."""
        at = max(self.at or received_at, received_at)
        if self.gone_at is not None and self.gone_at > at:
            return self._replace(at=at)
        return Heard(at)

    def told_gone(self, message: InboundMessage) -> "Heard":
        """An `offline` (a Will, the pump's goodbye, or a retained one): gone, unless heard live after it."""
        if (self.at is not None and message.received_at < self.at) or (
            self.gone_at is not None and message.received_at < self.gone_at
        ):  # fmt: skip
            return self
        return self._replace(gone_at=message.received_at, gone_on=message.generation)


class Rereads:
    """What the worker remembers of the pumps it turned away, and the retained statuses it asked the broker for."""

    def __init__(self) -> None:
        self.turned_away: dict[str, Heard] = {}  # device id: what the server heard of it
        self.asked: dict[str, tuple[Heard, float]] = {}  # device id: (what was heard, window's end, monotonic)
        self._next_check = 0.0

    def remember(self, messages: Iterable[InboundMessage]) -> None:
        """After a commit: the pumps of the messages it turned away as unregistered."""
        for message in messages:
            if message.unregistered is None:
                continue
            device_id = topics.parse_device_topic(message.topic).device_id
            heard = self.turned_away.pop(device_id, Heard())
            if message.unregistered == "offline":
                heard = heard.told_gone(message)
            elif not message.retain:
                heard = heard.hearing(message.received_at)
            self.turned_away[device_id] = heard  # the newest last: the oldest is forgotten first
            if len(self.turned_away) > LIMIT:
                del self.turned_away[next(iter(self.turned_away))]

    def check(self, link, *, clock: float | None = None) -> None:
        """Every CHECK_EVERY_S while pumps are remembered: those registered since are read again from the broker."""
        clock = time.monotonic() if clock is None else clock
        self.asked = {device_id: asked for device_id, asked in self.asked.items() if asked[1] > clock}
        if not self.turned_away or clock < self._next_check:
            return
        self._next_check = clock + CHECK_EVERY_S
        for device_id in device_pks_by_id(device_ids=set(self.turned_away)):
            heard = self.turned_away.pop(device_id)
            self.asked[device_id] = (heard, clock + WINDOW_S)
            link.statuses_reread(device_id)
            logger.info("pump registered since it was turned away: its retained status read again",
                        extra={"device_id": device_id, "reason": "registered"})  # fmt: skip

    def mark(self, messages: Iterable[InboundMessage]) -> None:
        """On intake: a retained status of a pump read again is applied as heard when it was last heard itself, and
        after the `offline` heard since, if any."""
        if not self.asked:
            return
        for message in messages:
            if not message.retain:
                continue
            try:
                parsed = topics.parse_device_topic(message.topic)
            except topics.TopicError:
                continue
            asked = self.asked.get(parsed.device_id)
            if asked is not None and parsed.kind == topics.STATUS:
                heard = asked[0]
                message.heard_at, message.gone_at = heard.at, heard.gone_at
                # on the connection that heard it told gone: all the pump said since came live, and none came
                message.news_since_gone = heard.gone_at is not None and heard.gone_on == message.generation
