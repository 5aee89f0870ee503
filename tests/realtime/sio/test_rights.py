"""The rights re-check reads sessions in bulk exactly as `django.contrib.auth.get_user` would, one by one."""

import asyncio
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


def test_verdicts_name_what_was_withdrawn(monkeypatch):
    from realtime.sio.auth import Principal

    # In Daphne it runs in a worker thread with its own connection; here it shares the test's transaction.
    monkeypatch.setattr("realtime.sio.rights.close_old_connections", lambda: None)
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
