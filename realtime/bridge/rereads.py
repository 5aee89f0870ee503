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
"""

import logging
import time
from collections.abc import Iterable
from datetime import datetime

from devices.ingest_selectors import device_pks_by_id
from protocol import topics
from realtime.bridge.ingest import InboundMessage

logger = logging.getLogger(__name__)

LIMIT = 1000  # pumps remembered at once: the newest turned away (a stray device id each second would grow it)
CHECK_EVERY_S = 1.0  # how often the remembered pumps are looked up while there are any
WINDOW_S = 30.0  # how long after a re-read a retained status of the pump is taken as its copy


class Rereads:
    """What the worker remembers of the pumps it turned away, and the retained statuses it asked the broker for."""

    def __init__(self) -> None:
        self.turned_away: dict[str, datetime | None] = {}  # device id: last heard itself (None: only the broker)
        self.asked: dict[str, tuple[datetime | None, float]] = {}  # device id: (last heard, window's end, monotonic)
        self._next_check = 0.0

    def remember(self, messages: Iterable[InboundMessage]) -> None:
        """After a commit: the pumps of the messages it turned away as unregistered."""
        for message in messages:
            if message.unregistered is None:
                continue
            device_id = topics.parse_device_topic(message.topic).device_id
            heard = self.turned_away.pop(device_id, None)
            if not message.retain and message.unregistered != "offline":
                heard = max(heard or message.received_at, message.received_at)
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
        """On intake: a retained status of a pump read again is applied as heard when it was last heard itself."""
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
                message.heard_at = asked[0]
