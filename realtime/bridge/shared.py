"""The bridge's parts for one process (K = 1, as ever) or for K slots shared by several processes.

With K slots (`slots.py`) the time-driven checks and the command outbox run in exactly one process, the
holder of the `housekeeping` lease; silence (`communication_lost`) is measured only for pumps whose slot
has been owned and connected for RECONNECT_GRACE_S, so a slot being taken over raises no false alarm.
A bridge's database sessions end a transaction left idle for a lease (`idle_in_transaction_session_timeout`):
a bridge stalled (SIGSTOP, a long pause) inside its lease renewal or a batch would otherwise hold those rows'
locks for as long as the stall lasts, and the bridge taking its slots over would wait on them (seen: a takeover
that never came in 15 s while the stalled bridge's lease thread was inside its renewal).
"""

from collections.abc import Callable, Collection
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from devices.lease_selectors import leases_settled
from realtime.bridge.check_schedule import round_begins
from realtime.bridge.housekeeping import Housekeeping
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.link import BrokerLink
from realtime.bridge.outbox import CommandOutbox
from realtime.bridge.slot_config import SlotConfig, slot_name, slot_of
from realtime.bridge.slots import SlotLinks

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class SlotHousekeeping(Housekeeping):
    """Housekeeping that runs only while this process holds the `housekeeping` lease."""

    may_sleep = False  # the other bridges' commits bring deadlines this process does not see

    def __init__(self, slots: SlotLinks) -> None:
        super().__init__()
        self.slots = slots
        self.leading = False
        self.settled: dict[str, datetime | None] = {}

    def tick(
        self,
        now: datetime,
        *,
        connected_since: datetime | None,
        clock: float | None = None,
        parts: Collection[int] | None = None,
    ) -> None:
        """Every check once, if leading (on gaining the lease, stale pumps are remembered afresh)."""
        if not self.slots.leading:
            self.leading = self.behind = False
            return
        if not self.leading:
            self.leading, self.stale_announced = True, None
        # Each slot's own grace replaces the one link's (`silence_as_of`, for silence and start time-outs alike).
        if round_begins(parts):
            names = [slot_name(slot) for slot in range(self.slots.config.slots)]
            self.settled = leases_settled(names=names, grace_s=settings.PUMPSTREAM["RECONNECT_GRACE_S"])
        super().tick(now, connected_since=LONG_AGO, clock=clock, parts=parts)

    def silence_as_of(self, device_id: str, now: datetime) -> datetime | None:
        """Pumps of a slot owned and connected for the grace period (the database's clock), as of how far its
        owner has applied what it received: a bridge behind on its inbox does not make its pumps look silent."""
        name = slot_name(slot_of(device_id, self.slots.config.slots))
        if name not in self.settled or self.settled[name] is None:
            return None
        return min(now, self.settled[name])


class LeaderOutbox(CommandOutbox):
    """The command outbox of the process holding the `housekeeping` lease; the others publish nothing."""

    def __init__(self, slots: SlotLinks) -> None:
        super().__init__(slots)
        self.slots = slots

    def _publish_queued(self, now: datetime) -> None:
        if self.slots.leading:
            super()._publish_queued(now)


def bridge_parts(
    *, on_inbound: Callable[[InboundMessage], None], on_puback: Callable[[int], None], name: str, index: int = 0,
    on_reconnected: Callable[[float], None] | None = None,
) -> tuple[BrokerLink | SlotLinks, CommandOutbox, Housekeeping]:  # fmt: skip
    """The link, outbox and housekeeping: one of each for BRIDGE_SLOTS=1, the shared kinds for more."""
    config = SlotConfig.from_settings(index=index)
    if config.slots <= 1:
        link = BrokerLink(on_inbound=on_inbound, on_puback=on_puback, on_reconnected=on_reconnected)
        return link, CommandOutbox(link), Housekeeping()
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured(
            f"BRIDGE_SLOTS={config.slots} needs PostgreSQL (DATABASE_URL=postgres://...): the slots' leases live "
            "there; on SQLite run one bridge with BRIDGE_SLOTS=1"
        )
    if not 0 <= index < config.processes:
        raise ImproperlyConfigured(f"bridge index {index} is outside BRIDGE_PROCESSES={config.processes}")
    connection_created.connect(stalled_transactions_end, dispatch_uid="bridge-stalled-transactions")
    connection.close()  # the next connection (and each thread's) ends transactions idle for a lease
    slots = SlotLinks(config=config, on_inbound=on_inbound, on_puback=on_puback, name=name,
                      on_reconnected=on_reconnected)  # fmt: skip
    return slots, LeaderOutbox(slots), SlotHousekeeping(slots)


def stalled_transactions_end(sender, connection: BaseDatabaseWrapper, **kwargs) -> None:
    """On each new PostgreSQL session of a bridge sharing the pumps: a transaction idle for BRIDGE_LEASE_S is
    ended by the server, its locks released (the stalled bridge's batch then fails, and is fenced on its retry)."""
    if connection.vendor == "postgresql":
        timeout_ms = int(settings.PUMPSTREAM["BRIDGE_LEASE_S"] * 1000)
        with connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
