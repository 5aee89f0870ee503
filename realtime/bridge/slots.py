"""Several bridges sharing the pumps: K slots, each one persistent MQTT session, each owned through a lease.

Every pump belongs to one slot, `slot_of(device_id, K)` (a stable hash). Slot i is one MQTT session with a
fixed client id (`<MQTT_CLIENT_ID>-<i>`, user `<MQTT user>-<i>`) subscribed to every pump's topics; it
applies only its own pumps' messages and acknowledges the others at once (a topic parse, no database).
So one pump's messages are applied by one process in the broker's order, and acknowledged after commit.

A slot is owned through a lease row in PostgreSQL, renewed every `lease_s / 4` by this module's thread
(its own database connection, so a long batch never lets a lease lapse). When a lease expires, a live
bridge claims the slot and connects with that client id and clean start off: the broker hands it the
dead session's unacknowledged and queued messages, in order. A process claims its home slots
(`i % processes == index`) as soon as they are free, another's once it has run for `lease_s` (so bridges
started together each get their own) as soon as that slot's lease has expired. Each process also holds
`process-<index>`; a bridge holding another's home slot hands it back when that process is alive again:
between two batches (nothing of the slot in flight) it disconnects the slot's session, drops the slot's
messages not yet committed (unacknowledged, so the broker redelivers them) and releases the lease.
A process that could not renew for `0.75 * lease_s` (by its monotonic clock) lets its slots go before
the database could give them to another. That alone cannot stop a process that stalls (SIGSTOP, a long pause,
a stuck disk) between taking messages and committing them, so each batch is fenced in its own transaction
(`fence`): it commits only while this process still holds each of its slots' leases from the claim its link was
made under (the lease's `acquired_at`), the lease rows locked until the commit; else it rolls back
unacknowledged and the worker lets those slots go (`fence_lost`).
"""

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from devices.lease_selectors import lease_epochs, leases_alive
from devices.services.leases import lease_claim, lease_release, lease_renew, leases_fence
from realtime.bridge.guard import FenceLost
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.link import BrokerLink, ReadingPause
from realtime.bridge.slot_config import SlotConfig, slot_name, slot_of, topic_slot

logger = logging.getLogger(__name__)

HOUSEKEEPING = "housekeeping"
SELF_FENCE = 0.75  # of the lease: let the slots go when the last renewal is older than this
GENERATIONS = 1_000_000  # each link's connection numbers start at a fresh multiple: no ack on the wrong link


class SlotLinks:
    """The slots this process owns, each a `BrokerLink`; to the worker it looks like one link.

    `run()` is the lease thread. Commands are published through the lowest slot held, by the process
    holding the `housekeeping` lease (`leading`), which also runs the time-driven checks.
    """

    def __init__(
        self, *, config: SlotConfig, on_inbound: Callable[[InboundMessage], None],
        on_puback: Callable[[int], None], name: str = "bridge", broker: dict | None = None,
        on_reconnected: Callable[[float], None] | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.on_inbound = on_inbound
        self.on_puback = on_puback
        self.on_reconnected = on_reconnected  # each slot's link: how long it was away (a slot newly claimed: not told)
        self.broker = broker or settings.MQTT
        # Unique per run: a restarted container often has the same host name and pid as the run it replaces.
        self.owner = f"{name}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.links: dict[int, BrokerLink] = {}
        self.reading = ReadingPause()  # one for every slot's link (`BrokerLink.reading`)
        self.epochs: dict[int, tuple[str, datetime]] = {}  # by link (generation base): its lease and claim
        self.threads: dict[int, threading.Thread] = {}
        self._leading = False
        self.protocol = 5
        self._never = threading.Event()
        self._stop = threading.Event()
        self._renewed_at = 0.0
        self._generations = 0
        self._born = time.monotonic()
        self.caught_up_at: datetime | None = None
        self.caught_up_clock = 0.0  # the same moment on the monotonic clock
        self.member = f"process-{config.index}"  # this process's own lease: it is alive
        self.is_member = False
        self.alive: set[str] = set()  # the other processes' leases held now
        self.handing_back: frozenset[int] = frozenset()  # set by the lease thread, done by the worker
        self._handed_back: list[str] = []  # detached by the worker, to release

    @property
    def leading(self) -> bool:
        """Whether this process holds the `housekeeping` lease, as of a renewal recent enough that no other process
        can hold it yet: one resumed after a stall past its lease (SIGSTOP) has not yet learnt that it lost it, and
        its worker would run the checks and publish the outbox's commands beside the new holder's."""
        return self._leading and time.monotonic() - self._renewed_at <= SELF_FENCE * self.config.lease_s

    # --- what the worker and the outbox use of a link ---
    @property
    def connected(self) -> threading.Event:
        link = self._publishing()
        return link.connected if link else self._never

    @property
    def connected_since(self):
        link = self._publishing()
        return link.connected_since if link else None

    @property
    def grace_from(self):
        """Each slot's grace is its lease's (`shared.SlotHousekeeping`): the publishing link's, as for one link."""
        link = self._publishing()
        return link.grace_from if link else None

    @property
    def session_contested(self) -> bool:
        """A slot's session taken over again and again (`BrokerLink.session_contested`): two bridges of one index?"""
        return any(link.session_contested for link in list(self.links.values()))

    @property
    def takeovers(self) -> list[float]:
        return [moment for link in list(self.links.values()) for moment in link.takeovers]

    @property
    def broker_started_at(self) -> datetime | None:
        """The broker's start as the latest of the slots' links read it (`broker_start.py`): one broker for all."""
        return max((link.broker_started_at for link in list(self.links.values()) if link.broker_started_at),
                   default=None)  # fmt: skip

    def owned(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        """The messages of slots still held, received on the link that holds them now: those of a slot let go
        (even if taken again since, on a new link that gets them redelivered) are never committed here."""
        return [message for message in messages if self._on_current_link(message)]

    def _on_current_link(self, message: InboundMessage) -> bool:
        link = self.links.get(message.slot)
        return link is not None and message.generation // GENERATIONS == link.generation // GENERATIONS

    def between_batches(self) -> None:
        """On the worker's thread, with nothing in flight: let go of the slots being handed back."""
        for slot in self.handing_back & set(self.links):
            self._detach(slot, why="handed back to its home bridge")
            self._handed_back.append(slot_name(slot))
        self.handing_back = frozenset()

    def fence(self, messages: list[InboundMessage]) -> None:
        """In the batch's transaction, before it commits: raise `FenceLost` unless this process still holds the
        lease of every slot of `messages` from the claim their link was made under (locked until the commit)."""
        bases = {message.generation // GENERATIONS for message in messages}
        epochs = {base: epoch for base in bases if (epoch := self.epochs.get(base)) is not None}
        held = leases_fence(epochs=dict(epochs.values()), owner=self.owner) if epochs else set()
        lost = {base for base in bases if base not in epochs or epochs[base][0] not in held}
        if lost:
            raise FenceLost(lost)

    def fence_lost(self, lost: FenceLost) -> None:
        """On the worker's thread: let go of the slots whose lease a batch found taken (not already replaced)."""
        for slot, link in list(self.links.items()):
            if link.generation // GENERATIONS in lost.links:
                self._detach(slot, why="a batch found its lease taken over by another bridge")

    def applied_until(self, moment: datetime, *, clock: float | None = None) -> None:
        """Every message received before `moment` (`clock` on the monotonic clock, now if not given) is committed:
        written with the next renewal (`_caught_up`)."""
        self.caught_up_at, self.caught_up_clock = moment, time.monotonic() if clock is None else clock

    def _caught_up(self) -> dict[str, datetime | None]:
        """How far each held slot's messages are applied: this process's moment once it is later than the slot's
        link connected, else None. A slot taken over (or reconnected) gets what the broker kept for it only after
        its link connects: an earlier moment of this process says nothing of them (its pumps are not judged).
        Earlier and later on the monotonic clock: a link that connected while the wall clock ran ahead, put right
        since, is caught up at the next turn, not once the wall clock has reached its connection (review 29)."""
        moment, clock = self.caught_up_at, self.caught_up_clock
        return {slot_name(slot): moment if moment and link.connected_clock is not None and clock > link.connected_clock
                else None for slot, link in self.links.items()}  # fmt: skip

    def ack(self, message: InboundMessage) -> None:
        link = self.links.get(message.slot)
        if link is not None:
            link.ack(message)

    def ack_many(self, messages: list[InboundMessage]) -> None:
        """Each slot's messages acknowledged together by its link (as `BrokerLink.ack_many`)."""
        by_slot: dict[int, list[InboundMessage]] = {}
        for message in messages:
            by_slot.setdefault(message.slot, []).append(message)
        for slot, mine in by_slot.items():
            link = self.links.get(slot)
            if link is not None:
                link.ack_many(mine)

    def publish(self, topic: str, payload: str, *, expiry_s: int) -> int | None:
        link = self._publishing()
        return link.publish(topic, payload, expiry_s=expiry_s) if link else None

    def forget(self, mid: int) -> None:
        link = self._publishing()
        if link is not None:
            link.forget(mid)

    def stop(self) -> None:
        self._stop.set()

    def statuses_reread(self, device_id: str) -> None:
        """The pump's retained statuses again, through its slot's link if this process holds it (`rereads.py`)."""
        link = self.links.get(slot_of(device_id, self.config.slots))
        if link is not None:
            link.statuses_reread(device_id)

    def _publishing(self) -> BrokerLink | None:
        return self.links[min(self.links)] if self.links else None

    # --- the lease thread ---
    def run(self) -> None:
        """Renew, claim and let go of leases until `stop()`; then disconnect every slot and release its lease."""
        logger.info("bridge slots: %d processes share %d; home slots %s", self.config.processes, self.config.slots,
                    [i for i in range(self.config.slots) if self.config.is_home(i)])  # fmt: skip
        try:
            while not self._stop.is_set():
                self.turn()
                self._stop.wait(self.config.lease_s / 4)
        finally:
            held = [slot_name(slot) for slot in self.links] + [self.member, *self._handed_back]
            held += [HOUSEKEEPING] if self._leading else []
            for slot in list(self.links):
                self._detach(slot, why="stopping")
            self._leading = False
            try:
                lease_release(names=held, owner=self.owner)
            except DatabaseError as exc:
                logger.warning("leases not released (they expire): %s", exc)

    def turn(self) -> None:
        """One round: renew what is held, let go of what was lost, claim what is free."""
        started = time.monotonic()
        try:
            self._renew()
            self._renewed_at = started
            self._claim()
        except DatabaseError as exc:
            logger.warning("bridge leases not renewed: %s", exc)
            close_old_connections()
        if time.monotonic() - self._renewed_at > SELF_FENCE * self.config.lease_s and (self.links or self._leading):
            logger.error("leases not renewed for %.1fs: letting every slot go", time.monotonic() - self._renewed_at)
            for slot in list(self.links):
                self._detach(slot, why="leases not renewed")
            self._leading = False

    def _renew(self) -> None:
        if self._handed_back:
            lease_release(names=self._handed_back, owner=self.owner)
            self._handed_back = []
        names = [slot_name(slot) for slot in self.links] + [self.member] + ([HOUSEKEEPING] if self._leading else [])
        connected = {slot_name(slot) for slot, link in self.links.items() if link.connected.is_set()}
        held = lease_renew(names=names, owner=self.owner, ttl_s=self.config.lease_s, connected=connected,
                           caught_up=self._caught_up())  # fmt: skip
        for slot in list(self.links):
            if slot_name(slot) not in held:
                self._detach(slot, why="its lease was claimed by another bridge")
        if self._leading and HOUSEKEEPING not in held:
            logger.warning("housekeeping lease lost")
        self._leading = HOUSEKEEPING in held
        self.is_member = self.member in held
        others = [f"process-{index}" for index in range(self.config.processes) if index != self.config.index]
        self.alive = leases_alive(names=others, besides=self.owner) if others else set()
        self.handing_back = frozenset(slot for slot in self.links if self._home_alive(slot))

    def _claim(self) -> None:
        free = [slot for slot in range(self.config.slots) if slot not in self.links]
        home = [slot_name(slot) for slot in free if self.config.is_home(slot)]
        other = [slot_name(slot) for slot in free if not self.config.is_home(slot) and not self._home_alive(slot)]
        ttl = self.config.lease_s
        claimed = lease_claim(names=home, owner=self.owner, ttl_s=ttl)
        if time.monotonic() - self._born >= ttl:  # bridges started together: each first takes its own slots
            claimed += lease_claim(names=other, owner=self.owner, ttl_s=ttl)
        if not self.is_member and lease_claim(names=[self.member], owner=self.owner, ttl_s=ttl):
            self.is_member = True
        epochs = lease_epochs(names=claimed, owner=self.owner) if claimed else {}
        for name in claimed:
            self._attach(int(name.removeprefix("slot-")), epoch=epochs.get(name))
        if not self._leading and lease_claim(names=[HOUSEKEEPING], owner=self.owner, ttl_s=ttl):
            logger.info("housekeeping lease taken: this bridge runs the time-driven checks and publishes commands")
            self._leading = True

    def _home_alive(self, slot: int) -> bool:
        """Another process whose home slot this is is alive (it takes the slot, or gets it back)."""
        return not self.config.is_home(slot) and f"process-{slot % self.config.processes}" in self.alive

    def _attach(self, slot: int, *, epoch: datetime | None) -> None:
        """Connect the slot's session, its link numbered afresh and fenced by the lease's claim (`epoch`)."""
        link, thread = self._connect(slot)
        self._generations += 1
        link.generation = self._generations * GENERATIONS
        if epoch is not None:  # none: the lease was taken again at once; every batch of this link is refused
            self.epochs[self._generations] = (slot_name(slot), epoch)
        self.links[slot], self.threads[slot] = link, thread
        thread.start()

    def _connect(self, slot: int) -> tuple[BrokerLink, threading.Thread]:
        broker = {**self.broker, "CLIENT_ID": f"{self.broker['CLIENT_ID']}-{slot}"}
        if broker.get("USERNAME"):
            broker["USERNAME"] = f"{broker['USERNAME']}-{slot}"
        link = BrokerLink(on_inbound=partial(self._inbound, slot), on_puback=partial(self._puback, slot),
                          broker=broker, on_reconnected=self.on_reconnected, reading=self.reading,
                          contested_after=2)  # a takeover from a stalled holder is a hand-over  # fmt: skip
        logger.info("slot %d claimed: connecting as %s", slot, broker["CLIENT_ID"], extra={"reason": "slot"})
        return link, threading.Thread(target=link.run, name=f"mqtt-{slot}", daemon=True)

    def _detach(self, slot: int, *, why: str) -> None:
        link, thread = self.links.pop(slot, None), self.threads.pop(slot, None)
        if link is None or thread is None:  # let go meanwhile by the other thread
            return
        self.epochs.pop(link.generation // GENERATIONS, None)
        link.stop()
        thread.join(timeout=5)
        logger.warning("slot %d let go: %s", slot, why)

    def _inbound(self, slot: int, message: InboundMessage) -> None:
        """On the slot's paho thread: its own pumps' messages to the worker, the others acknowledged at once."""
        message.slot = topic_slot(message.topic, self.config.slots)
        if message.slot == slot:
            self.on_inbound(message)
        else:
            link = self.links.get(slot)
            if link is not None:
                link.ack(message)

    def _puback(self, slot: int, mid: int) -> None:
        link = self._publishing()
        if link is not None and self.links.get(slot) is link:
            self.on_puback(mid)
