"""Redis between several Daphne processes (only with `REDIS_URL`): nudges that carry no authority.

Each Daphne has its own road of changes: it reads the change log in commit order, woken by PostgreSQL's
LISTEN/NOTIFY, and fans every change out to its own sockets. Redis is not on that road (the log is ordered
and durable, Redis pub/sub is neither: a subscriber that reconnects has missed what was published meanwhile).

python-socketio's `AsyncRedisManager` is the Socket.IO client manager, but every emit stays in this process
(`ClusterManager.emit`): an emit also sent through Redis would reach the other processes' members of the room a
second time, since they read the same log. What goes through the manager's Redis channel are nudges, each
naming whom to re-read, never a verdict:

- `pumpstream:recheck` with names (`user:5`, `account:2`, `session:<hash>`, `*`): every Daphne re-checks those
  sockets' rights now (a sign-out, deactivation, ward membership removed, token revoked, anywhere) instead of
  at its next `RIGHTS_RECHECK_S` round, which stays as the safety net for a lost nudge;
- `pumpstream:silence` with ward codes: every Daphne re-reads the wards' silences and announces them to its
  ward feeds now instead of at the next 1 s tick.

The database decides what a re-read finds, so a forged nudge costs a read and nothing else; and any other
message on the channel (python-socketio's own `emit`, `disconnect`, `enter_room`...) is dropped and counted,
since PumpStream sends none. Redis still needs its password (docs/security.md): the channel layer's groups
(`realtime/consumers.py`) do act on what they receive.
"""

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis
import socketio
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

CHANNEL = "pumpstream-socketio"
RECHECK = "pumpstream:recheck"
SILENCE = "pumpstream:silence"
EVERYONE = "*"
MAX_NAMES = 200
MAX_NAME_LENGTH = 80
SYNC_HOST_ID = f"sync-{uuid.uuid4().hex}"

NudgeHandler = Callable[[list[str]], None]


def nudge_message(kind: str, names: Iterable[str], host_id: str = SYNC_HOST_ID) -> dict:
    """The JSON object of one nudge on the channel."""
    return {"method": kind, "names": sorted(set(names))[:MAX_NAMES], "host_id": host_id}


def nudge_names(message: Any) -> list[str] | None:
    """The names of a well-formed nudge, else None."""
    names = message.get("names") if isinstance(message, dict) else None
    if not isinstance(names, list) or len(names) > MAX_NAMES:
        return None
    if not all(isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH for name in names):
        return None
    return names


class ClusterManager(socketio.AsyncRedisManager):
    """The Socket.IO client manager on Redis: emits stay local; the channel carries nudges only."""

    def __init__(self, url: str) -> None:
        super().__init__(url, channel=CHANNEL, logger=logger, redis_options={"health_check_interval": 30})
        self.handlers: dict[str, NudgeHandler] = {}
        self.received = 0
        self.dropped = 0

    async def emit(self, event: str, data: Any, namespace: str | None = None, **kwargs: Any) -> None:
        """Deliver to this process's members only: every process delivers the change log to its own."""
        kwargs["ignore_queue"] = True
        await super().emit(event, data, namespace=namespace, **kwargs)

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        """Empty this process's room only (nothing of the kind is sent to the other processes)."""
        await socketio.AsyncManager.close_room(self, room, namespace)

    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        """Join this process's socket to a room; a socket gone (or another process's) is nobody's business here.

        python-socketio's pub/sub manager publishes a room change of a socket it does not hold to Redis, which the
        other processes drop: from `Subscriber._join` under the fan-out's pump lock (a page closed while its
        snapshot was sent), so a slow or unreachable Redis held that pump's deliveries (review 10)."""
        if self._here(sid, namespace):
            await socketio.AsyncManager.enter_room(self, sid, namespace, room, eio_sid=eio_sid)

    async def leave_room(self, sid: str, namespace: str, room: str) -> None:
        """Take this process's socket out of a room (as `enter_room`: never a message to Redis)."""
        if self._here(sid, namespace):
            await socketio.AsyncManager.leave_room(self, sid, namespace, room)

    def _here(self, sid: str, namespace: str) -> bool:
        return self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)

    async def nudge(self, kind: str, names: Iterable[str]) -> None:
        """Publish a nudge to every Daphne, this one included (from the event loop)."""
        await self._publish(nudge_message(kind, names, self.host_id))

    async def _listen(self):  # noqa: ANN202 - python-socketio's async generator, consumed by its `_thread`
        """Read the channel; act on nudges here and hand python-socketio nothing (it would act on forgeries)."""
        async for raw in super()._listen():
            self.receive(raw)
        return
        yield  # pragma: no cover - makes this an async generator like the method it overrides

    def receive(self, raw: bytes | str) -> None:
        """Act on one message of the channel: a known nudge goes to its handler, anything else is dropped."""
        try:
            message = json.loads(raw)
        except (ValueError, TypeError, RecursionError):
            message = None
        kind = message.get("method") if isinstance(message, dict) else None
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        names = nudge_names(message)
        if handler is None or names is None:
            self.dropped += 1
            logger.warning("dropped a message on the Redis channel that PumpStream does not send",
                           extra={"method": str(kind)[:40]})  # fmt: skip
            return
        self.received += 1
        handler(names)


def cluster_manager() -> ClusterManager | None:
    """The client manager for this process's Socket.IO server: on Redis when `REDIS_URL` is set, else the default."""
    return ClusterManager(settings.REDIS_URL) if settings.REDIS_URL else None


@functools.lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def nudge_now(kind: str, names: Iterable[str]) -> None:
    """Publish a nudge from a thread or any process (a page, the admin, `manage.py`); a failure is logged only."""
    if not settings.REDIS_URL:
        return
    try:
        _client(settings.REDIS_URL).publish(CHANNEL, json.dumps(nudge_message(kind, names)))
    except redis.RedisError as exc:  # the rights re-check still acts within RIGHTS_RECHECK_S
        logger.warning("nudge not published: %s", exc, extra={"nudge": kind})


def nudge_on_commit(kind: str, names: Iterable[str]) -> None:
    """Publish a nudge once the current transaction commits (at once outside one), so re-reads see the change."""
    if settings.REDIS_URL:
        names = list(names)
        transaction.on_commit(lambda: nudge_now(kind, names))
