"""The rights re-check reads sessions in bulk exactly as `django.contrib.auth.get_user` would, one by one."""

import asyncio
import threading
from datetime import timedelta
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user
from django.contrib.sessions.models import Session
from django.utils import timezone

from realtime.sio.auth import users_of_sessions
from realtime.sio.rights import verdicts_for
from tests.factories import make_device, make_user, make_ward
from tests.support.sio import session_cookie

pytestmark = pytest.mark.django_db


class _Request:
    def __init__(self, key: str) -> None:
        self.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)


def key_of(user) -> str:
    return session_cookie(user).split("=", 1)[1]


def test_bulk_session_read_matches_get_user():
    icu = make_ward("icu")
    keys = {name: key_of(make_user(name, ward=icu)) for name in ("kept", "new-password", "expired", "deleted")}
    changed = type(make_user("x")).objects.get(username="new-password")
    changed.set_password("another-password-1")
    changed.save()
    Session.objects.filter(session_key=keys["expired"]).update(expire_date=timezone.now() - timedelta(seconds=1))
    Session.objects.filter(session_key=keys["deleted"]).delete()
    found = users_of_sessions(set(keys.values()) | {"no-such-session"})
    for name, key in keys.items():
        expected = get_user(_Request(key))
        expected = expected if expected.is_authenticated else None
        assert found[key] == expected, f"{name}: bulk read {found[key]!r}, get_user {expected!r}"
    assert found["no-such-session"] is None
    assert [name for name, key in keys.items() if found[key] is not None] == ["kept"]


def test_a_session_is_read_afresh_once_its_stored_text_changed():
    """The re-check decodes a session only when its text changed: a change to it is seen at the next read."""
    icu = make_ward("icu")
    nurse, other = make_user("nurse", ward=icu), make_user("other", ward=icu)
    key = key_of(nurse)
    assert users_of_sessions({key}) == {key: nurse}
    assert users_of_sessions({key}) == {key: nurse}, "read again from the decoded copy"
    store = _Request(key).session
    store[HASH_SESSION_KEY] = "forged"
    store.save()
    assert users_of_sessions({key}) == {key: None}, "a session whose text changed was not decoded again"
    store[SESSION_KEY], store[HASH_SESSION_KEY] = str(other.pk), other.get_session_auth_hash()
    store.save()
    assert users_of_sessions({key}) == {key: other}


def test_verdicts_name_what_was_withdrawn():
    from realtime.sio.auth import Principal

    icu = make_ward("icu")
    make_device("PUMP_R1", ward=icu)
    nurse, gone = make_user("nurse", ward=icu), make_user("gone", ward=icu)
    nurse_key, gone_key = key_of(nurse), key_of(gone)
    type(gone).objects.filter(pk=gone.pk).update(is_active=False)
    icu.members.remove(nurse)
    verdicts = verdicts_for({
        nurse_key: (Principal(user=nurse, session_key=nurse_key), {"PUMP_R1"}, {"icu"}),
        gone_key: (Principal(user=gone, session_key=gone_key), {"PUMP_R1"}, set()),
    })  # fmt: skip
    assert verdicts[gone_key].reason == "Account deactivated"
    assert verdicts[nurse_key].reason is None and verdicts[nurse_key].lost_devices == {"PUMP_R1"}
    assert verdicts[nurse_key].wards == {"icu": "Not permitted to watch this ward"}


class _GoneClient(Exception):
    """What Daphne raises when a socket's client left mid-send ('Attempt to send on a closed protocol')."""


class _Socket:
    """A fake subscriber (unit test): a session, what it watches, and whether its client already left."""

    def __init__(self, session_key: str, *, gone: bool = False) -> None:
        from types import SimpleNamespace

        from realtime.sio.auth import Principal

        self.principal = Principal(user=SimpleNamespace(pk=7), session_key=session_key, session_hash=session_key)
        self.limits = SimpleNamespace(devices={"PUMP_R1"}, wards=set())
        self.gone, self.sent, self.closed = gone, [], False

    async def send(self, event: str, body: dict) -> None:
        if self.gone:
            raise _GoneClient("Attempt to send on a closed protocol")
        self.sent.append((event, body))

    async def close(self) -> None:
        self.closed = True


def test_a_socket_gone_mid_send_spares_no_other_socket_its_revocation(monkeypatch):
    """A CI run: signing out closed the session's Channels socket, whose client left as the error was sent; the
    exception ended the round, and the same session's Socket.IO socket stayed open (till the periodic re-check)."""
    from realtime.sio.rights import LiveConnection, RightsRegistry, Verdict

    registry = RightsRegistry()
    gone, open_ = _Socket("s1", gone=True), _Socket("s1")
    registry.connections = {"ws": LiveConnection(gone, gone.close), "sio": LiveConnection(open_, open_.close)}
    monkeypatch.setattr("realtime.sio.rights.verdicts_for", lambda requests: {"s1": Verdict(reason="Signed out")})
    asyncio.run(registry.recheck({"session:s1"}))
    assert open_.closed and open_.sent == [("error", {"message": "Signed out"})], "the other socket was not closed"
    assert gone.closed and not registry.connections, "the socket whose client left is released and closed too"


class _Watcher:
    """A fake subscriber of a real session, watching nothing: the round reads its rights and finds them intact."""

    def __init__(self, principal) -> None:
        from types import SimpleNamespace

        self.principal = principal
        self.limits = SimpleNamespace(devices=set(), wards=set())
        self.closed = False

    def forget_visible(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


@pytest.mark.django_db(transaction=True)
def test_the_rounds_read_on_one_kept_connection_closed_with_the_last_socket(settings):
    """Issue 17's idle cost: a round opened and closed a connection each time (`CONN_MAX_AGE` 0). The rounds now
    read on their own thread's kept connection, and close it when no socket is left (nothing held for nobody)."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    from realtime.sio.auth import Principal
    from realtime.sio.rights import RightsRegistry

    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "RIGHTS_RECHECK_S": 0.02}
    nurse = make_user("nurse", ward=make_ward("icu"))
    key = key_of(nurse)
    opened: list[str] = []

    def created(sender, connection, **kwargs) -> None:
        opened.append(threading.current_thread().name)

    async def main() -> tuple[bool, bool, bool]:
        registry = RightsRegistry()
        watcher = _Watcher(Principal(user=nurse, session_key=key, session_hash="h"))
        original, rounds = registry.recheck, []

        async def counted(names=None) -> None:
            await original(names)
            rounds.append(names)

        registry.recheck = counted
        assert await registry.admit("sio", watcher, watcher.close) is None
        while len(rounds) < 5:
            await asyncio.sleep(0.01)
        kept = await asyncio.get_running_loop().run_in_executor(
            registry._reader, lambda: connections["default"].connection is not None
        )
        registry.release("sio")
        await registry._task
        closed = await asyncio.get_running_loop().run_in_executor(
            registry._reader, lambda: connections["default"].connection is None
        )
        return watcher.closed, kept, closed

    connection_created.connect(created)
    try:
        watcher_closed, kept, closed = asyncio.run(main())
    finally:
        connection_created.disconnect(created)
    rounds_opened = [name for name in opened if name.startswith("rights-recheck")]
    assert not watcher_closed, "a valid session's socket was closed by the round"
    assert len(rounds_opened) == 1, f"five rounds opened {len(rounds_opened)} connections: {opened}"
    assert kept, "the connection was not kept between rounds"
    assert closed, "the rounds' connection outlived the last socket"


@pytest.mark.django_db(transaction=True)
def test_a_read_handed_while_the_connection_closes_is_closed_after_too(settings):
    """Review (helper-201, W1): a socket admitted, nudged (Redis) and released while the last socket's close ran: its
    read, queued behind the close on the reads' thread, opened the connection again and nothing closed it."""
    from django.db import connections

    from realtime.sio.auth import Principal
    from realtime.sio.rights import RightsRegistry

    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "RIGHTS_RECHECK_S": 0.02}
    nurse = make_user("nurse", ward=make_ward("icu"))
    key = key_of(nurse)

    async def main() -> bool:
        registry = RightsRegistry()
        first = _Watcher(Principal(user=nurse, session_key=key, session_hash="h"))
        assert await registry.admit("a", first, first.close) is None
        await asyncio.sleep(0.1)  # rounds ran: the connection is open
        real_close = registry._close_reads

        async def close_with_a_visitor() -> None:
            gate = threading.Event()
            registry._reader.submit(gate.wait, 10)  # the thread busy: the close waits behind it, whatever the backend
            handed = registry._reads
            closing = asyncio.ensure_future(real_close())
            await asyncio.sleep(0)  # the close is handed to the thread
            visitor = _Watcher(Principal(user=nurse, session_key=key, session_hash="h"))
            await registry.admit("b", visitor, visitor.close)  # PostgreSQL: the socket ledger's write first
            registry.recheck_soon(["*"])
            for _ in range(500):  # the nudged round hands its read, behind the close
                if registry._reads > handed:
                    break
                await asyncio.sleep(0.01)
            registry.release("b")
            gate.set()
            await closing

        registry._close_reads = close_with_a_visitor
        registry.release("a")
        await registry._task
        if registry._nudge_task is not None:
            await registry._nudge_task
        return await asyncio.get_running_loop().run_in_executor(
            registry._reader, lambda: connections["default"].connection is None
        )

    assert asyncio.run(main()), "the reads' connection was left open with no socket left"
