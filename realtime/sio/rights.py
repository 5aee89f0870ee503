"""Rights checked while connected: every live socket of this Daphne process, re-checked every ~2 s.

A socket is admitted with its principal's rights of that moment; those can be withdrawn anywhere (the
admin in this process or another, a `manage.py shell`, a sign-out in another browser, an expired or
idle session, a password change, a deactivated user, a revoked or deleted service account, a ward
membership removed). The registry re-reads, in one worker-thread call per round, what each connected
principal may still do, and:

- a principal no longer valid: its sockets get `error` and are closed;
- a pump or ward it may no longer watch: `error`, and that subscription is dropped (a pump deleted whose
  `device:removed` has not reached this process yet: `error` "Pump removed: it is no longer monitored");
- an every-ward feed (`*`) whose wards changed: subscribed again with the wards of now.

A pump deleted ends every subscription of it at once, not at the next round (`pump_removed`, called by the fan-out
once its `device:removed` reached the pump's rooms and endpoint connections).

With Redis between several Daphne (`realtime/cluster.py`), a process that changes rights nudges every process
to re-check the named principals' sockets at once (`recheck_soon`); the periodic round stays as the safety net.

It also caps the sockets one principal may hold open (`SOCKETS_PER_PRINCIPAL`, default 20): on PostgreSQL on
all Daphne processes together (the tally is in the database, `realtime/sio/socket_cap.py`), on SQLite (one
Daphne) in this process's memory.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections

from devices.access_selectors import device_ids_registered, device_ids_visible_to_each, service_accounts_by_pk
from protocol import events
from protocol.events import DeviceChange
from protocol.ward_payloads import error_body
from realtime.cluster import EVERYONE
from realtime.sio.access import ward_scope
from realtime.sio.auth import Principal, users_of_sessions
from realtime.sio.database import on_usable_connection
from realtime.sio.socket_cap import SocketLedger
from realtime.sio.subscriptions import PUMP_REMOVED, Subscriber
from realtime.sio.ward_feed import ALL_WARDS, WardScope

logger = logging.getLogger(__name__)

Close = Callable[[], Awaitable[None]]


@dataclass
class LiveConnection:
    """One admitted socket: who it is, what it watches, and how to close it."""

    subscriber: Subscriber
    close: Close


@dataclass
class Verdict:
    """What a principal may still do: `reason` set means nothing at all."""

    reason: str | None = None
    principal: Principal | None = None
    lost_devices: set[str] = field(default_factory=set)
    removed_devices: set[str] = field(default_factory=set)  # of those, the pumps deleted (no longer registered)
    wards: dict[str, WardScope | str] = field(default_factory=dict)


def principal_key(principal: Principal) -> str:
    """Who counts as one principal for the socket cap."""
    return f"account:{principal.account.pk}" if principal.account is not None else f"user:{principal.user.pk}"


def credential_of(principal: Principal) -> str:
    """What one re-check reads once however many sockets share it: a session, or a service account."""
    return principal.session_key or principal_key(principal)


def principals_refreshed(principals: dict[str, Principal]) -> dict[str, Principal | str]:
    """Each credential's principal as the database has it now, or why it lost its right to connect."""
    users = users_of_sessions({p.session_key for p in principals.values() if p.account is None})
    account_ids = {p.account.pk for p in principals.values() if p.account is not None}
    accounts = service_accounts_by_pk(pks=account_ids)
    fresh: dict[str, Principal | str] = {}
    for credential, principal in principals.items():
        if principal.account is not None:
            account = accounts.get(principal.account.pk)
            ok = account is not None and account.is_active
            fresh[credential] = Principal(account=account, session_hash=principal.session_hash) if ok else (
                "Service account revoked")  # fmt: skip
            continue
        user = users.get(principal.session_key)
        if user is None or user.pk != principal.user.pk:
            fresh[credential] = "Signed out or session expired"
        elif not user.is_active:
            fresh[credential] = "Account deactivated"
        else:
            fresh[credential] = Principal(user=user, session_hash=principal.session_hash,
                                          session_key=principal.session_key)  # fmt: skip
    return fresh


def rights_of(watched: dict[str, tuple[Principal, set[str], set[str]]]) -> dict[str, tuple[set[str], dict[str, Any]]]:
    """Per principal (fresh): what it may no longer watch of its `devices`, and its scope of each of its `wards`.

    The pumps' visibility is read for every principal together (`device_ids_visible_to_each`: a few queries a
    round, not one a user: 100 signed-in watchers cost 22 ms of CPU a round through one query each).
    """
    keys = list(watched)
    visible = device_ids_visible_to_each([(watched[key][0].subject, watched[key][1]) for key in keys])
    return {key: (watched[key][1] - seen, {ward: ward_scope(watched[key][0], ward) for ward in watched[key][2]})
            for key, seen in zip(keys, visible, strict=True)}  # fmt: skip


def covers(names: set[str], connection: LiveConnection) -> bool:
    """Whether a nudge naming `names` (`user:5`, `account:2`, `session:<hash>`, `*`) is about this socket."""
    principal = connection.subscriber.principal
    return bool({EVERYONE, principal_key(principal), f"session:{principal.session_hash}"} & names)


def verdicts_for(requests: dict[str, tuple[Principal, set[str], set[str]]]) -> dict[str, Verdict]:
    """One verdict per credential: credentials read together, rights once per user or service account."""
    fresh = principals_refreshed({credential: request[0] for credential, request in requests.items()})
    watched: dict[str, tuple[Principal, set[str], set[str]]] = {}
    for credential, (_, devices, wards) in requests.items():
        principal = fresh[credential]
        if isinstance(principal, Principal):
            _, all_devices, all_wards = watched.setdefault(principal_key(principal), (principal, set(), set()))
            all_devices.update(devices)
            all_wards.update(wards)
    rights = rights_of(watched)
    lost = set().union(*(devices for devices, _ in rights.values()))
    removed = lost - device_ids_registered(lost) if lost else set()
    verdicts = {}
    for credential, principal in fresh.items():
        if isinstance(principal, str):
            verdicts[credential] = Verdict(reason=principal)
        else:
            devices, wards = rights[principal_key(principal)]
            verdicts[credential] = Verdict(principal=principal, lost_devices=devices,
                                           removed_devices=devices & removed, wards=wards)  # fmt: skip
    return verdicts


def _verdicts_on_thread(requests: dict[str, tuple[Principal, set[str], set[str]]]) -> dict[str, Verdict]:
    """`verdicts_for` on the re-check's own thread, on its kept connection (`on_usable_connection`: replaced first
    if it broke or no longer answers). With `CONN_MAX_AGE` 0, `close_old_connections` opened and closed a connection
    every round: 1.2 of the 5.7 ms a round costs for 100 sessions (SQLite; a PostgreSQL backend each time)."""
    return on_usable_connection(verdicts_for, requests)


class RightsRegistry:
    """The live sockets of this process (both transports) and the periodic re-check of their rights."""

    def __init__(self) -> None:
        self.connections: dict[str, LiveConnection] = {}
        self.ledger = SocketLedger()
        self._task: asyncio.Task | None = None
        self._round = asyncio.Lock()  # one re-check at a time: a nudged round and the periodic one never interleave
        self._nudged: set[str] = set()
        self._nudge_task: asyncio.Task | None = None
        # the rounds' reads: one thread, its connection kept while sockets are open, closed with the last one
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rights-recheck")
        self._reads = 0  # reads handed to that thread: one handed while its connection closed reopens it

    @property
    def interval_s(self) -> float:
        return settings.PUMPSTREAM["RIGHTS_RECHECK_S"]

    async def admit(self, conn_id: str, subscriber: Subscriber, close: Close) -> str | None:
        """Register a socket; the refusal message when its principal already holds the most sockets allowed
        on all Daphne processes together (`socket_cap`)."""
        cap = settings.PUMPSTREAM["SOCKETS_PER_PRINCIPAL"]
        key = principal_key(subscriber.principal)
        held = sum(1 for live in self.connections.values() if principal_key(live.subscriber.principal) == key)
        if cap and not (await self.ledger.open(conn_id, key, cap, held) if self.ledger.shared else held < cap):
            logger.warning("socket cap reached", extra={"principal": subscriber.principal.label, "cap": cap})
            return f"At most {cap} connections per user"
        self.connections[conn_id] = LiveConnection(subscriber, close)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return None

    def release(self, conn_id: str) -> None:
        """Forget a closed socket."""
        if self.connections.pop(conn_id, None) is not None and self.ledger.shared:
            self.ledger.close(conn_id)

    async def pump_removed(self, change: DeviceChange) -> None:
        """Fan-out listener: after a `device:removed` was delivered (the last event of the pump's subscribers), every
        subscription of the pump in this process ends. One still waiting for its snapshot (not in the pump's room:
        the removal did not reach it) is left to that snapshot (`Subscriber._join`): of the removed registration, it
        is told by an `error` naming the pump; of a newer one (the pump registered anew under the id, read before this
        process delivered the old row's removal), it watches that pump, as does one that joined with such a snapshot.
        A snapshot that cannot be read (the pump gone) tells the page by its own `error`."""
        if change.event != events.DEVICE_REMOVED:
            return
        for conn_id, connection in list(self.connections.items()):
            subscriber = connection.subscriber
            if change.device_id not in subscriber.limits.devices or conn_id not in self.connections:
                continue
            if _joined_newer(subscriber.joined.get(change.device_id), change):
                continue
            if change.device_id not in subscriber.joined:  # its snapshot is being read: the snapshot decides
                subscriber.removed_unjoined[change.device_id] = change.registration
                continue
            try:
                await subscriber.unsubscribe_device(change.device_id)
            except Exception:  # one socket gone mid-send must not keep the others subscribed to a removed pump
                logger.exception("ending a removed pump's subscription failed",
                                 extra={"device_id": change.device_id,
                                        "principal": subscriber.principal.label})  # fmt: skip

    def held_by(self) -> Counter:
        """Sockets per principal (for tests and metrics)."""
        return Counter(principal_key(live.subscriber.principal) for live in self.connections.values())

    async def _run(self) -> None:
        while self.connections:  # again if a socket came while the connection was being closed (this task not done)
            try:
                while self.connections:
                    await asyncio.sleep(self.interval_s)
                    try:
                        await self.recheck()
                    except Exception:  # the re-check must outlive one failed round (database busy): the next retries
                        logger.exception("rights re-check failed")
            finally:  # no socket left: the reads' connection is not kept for nobody (a test database can be dropped)
                await self._close_reads()

    async def _close_reads(self) -> None:
        """Close the reads' connection, again while reads were handed to the thread meanwhile (a socket admitted,
        nudged and released during the close: its read, queued behind the close, opened the connection anew)."""
        handed = None
        while handed != self._reads:
            handed = self._reads
            try:
                await asyncio.get_running_loop().run_in_executor(self._reader, connections.close_all)
            except Exception:  # the process is stopping (its loop or executor closing): nothing left to keep
                logger.debug("the re-check's connection not closed", exc_info=True)
                return

    def recheck_soon(self, names: list[str]) -> None:
        """A nudge from Redis (`realtime/cluster.py`): re-check the sockets these names cover now, not next round."""
        if not self.connections:
            return
        self._nudged.update(names)
        if self._nudge_task is None or self._nudge_task.done():
            self._nudge_task = asyncio.get_running_loop().create_task(self._recheck_nudged())

    async def _recheck_nudged(self) -> None:
        while self._nudged:
            names, self._nudged = self._nudged, set()  # nudges that arrive meanwhile make one more round
            try:
                await self.recheck(names)
            except Exception:  # like the periodic round: the next one (or the periodic re-check) retries
                logger.exception("nudged rights re-check failed")

    async def recheck(self, names: set[str] | None = None) -> None:
        """One round: read the connected credentials' rights now (of the sockets `names` cover; None: all) and
        act on what was withdrawn."""
        async with self._round:
            await self._recheck(names)

    async def _recheck(self, names: set[str] | None) -> None:
        live = {conn_id: c for conn_id, c in self.connections.items() if names is None or covers(names, c)}
        requests: dict[str, tuple[Principal, set[str], set[str]]] = {}
        for connection in live.values():
            subscriber = connection.subscriber
            _, devices, wards = requests.setdefault(credential_of(subscriber.principal),
                                                    (subscriber.principal, set(), set()))  # fmt: skip
            devices.update(subscriber.limits.devices)
            wards.update(subscriber.limits.wards)
        if not requests:
            return
        if self.ledger.shared and names is None:
            await self.ledger.touch()
        self._reads += 1
        verdicts = await asyncio.get_running_loop().run_in_executor(self._reader, _verdicts_on_thread, requests)
        for conn_id, connection in live.items():
            verdict = verdicts.get(credential_of(connection.subscriber.principal))
            if verdict is None or conn_id not in self.connections:
                continue
            try:
                await self._apply(conn_id, connection, verdict)
            except Exception:  # one socket gone mid-send (its client left) must not spare the others their verdict
                logger.exception("rights re-check of one socket failed",
                                 extra={"principal": connection.subscriber.principal.label})  # fmt: skip

    async def _apply(self, conn_id: str, live: LiveConnection, verdict: Verdict) -> None:
        subscriber = live.subscriber
        if verdict.reason is not None:
            logger.info("closing a socket that lost its right", extra={"principal": subscriber.principal.label,
                                                                       "reason": verdict.reason})  # fmt: skip
            try:
                await subscriber.send(events.ERROR, error_body(verdict.reason))  # may find the client gone
            finally:
                self.release(conn_id)
                await live.close()
            return
        subscriber.principal = verdict.principal
        subscriber.forget_visible()
        for device_id in sorted(verdict.lost_devices & subscriber.limits.devices):
            # a pump deleted whose `device:removed` is not published yet (another process committed it): said so
            why = PUMP_REMOVED if device_id in verdict.removed_devices else "No longer permitted to watch this pump"
            await subscriber.send(events.ERROR, error_body(why, deviceId=device_id))
            await subscriber.unsubscribe_device(device_id)
        for ward in sorted(subscriber.limits.wards & verdict.wards.keys()):
            await self._apply_ward(subscriber, ward, verdict.wards[ward])

    async def _apply_ward(self, subscriber: Subscriber, ward: str, scope: WardScope | str) -> None:
        if isinstance(scope, str):
            await subscriber.send(events.ERROR, error_body(scope, ward=ward))
            subscriber.unsubscribe_ward(ward)
        elif ward == ALL_WARDS and subscriber.ward_scopes.get(ward) != scope:
            await subscriber.subscribe_ward_scope(ward, scope)


rights = RightsRegistry()


def _joined_newer(registration: int | None, change: DeviceChange) -> bool:
    """Whether a subscriber joined the pump with a snapshot of a newer registration than `change`'s (ids only grow)."""
    return registration is not None and change.registration is not None and registration > change.registration
