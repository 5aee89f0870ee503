"""Sockets lose what their principal loses, within 5 s, whichever process made the change.

Every change here is made by the test process, which is not the Daphne serving the sockets (as an
admin on another Daphne, or a `manage.py shell`, would): no in-process signal can help. For each cause
a real Socket.IO client and a real Channels endpoint client, both watching a pump, must get `error`
and be closed (or, for a ward removal, be unsubscribed) within 5 s.
"""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from devices.models import ServiceAccount
from devices.services.accounts import service_account_create, service_account_revoke
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.integration.realtime.test_socketio import InternalClient
from tests.support.changes import changes_commit
from tests.support.sio import ChannelsClient, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PUMP = "PUMP_RIGHTS_1"
BOUND_S = 5.0


@pytest.fixture
def ward():
    icu = make_ward("icu")
    make_device(PUMP, ward=icu)
    return icu


def watching(url: str, *, cookie: str | None = None, token: str | None = None) -> tuple[StreamClient, ChannelsClient]:
    """A Socket.IO client and a Channels client with the same credential, both subscribed to the pump."""
    sio_client = StreamClient(url, cookie=cookie, token=token).connect()
    assert sio_client.subscribe(PUMP)[0] == events.STREAM_SUBSCRIBED
    plain = ChannelsClient(url, cookie=cookie, token=token)
    plain.emit(events.SUBSCRIBE_DEVICE, {"deviceId": PUMP})
    plain.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED)
    return sio_client, plain


def assert_closed_with_error(sio_client: StreamClient, plain: ChannelsClient, cause: str) -> float:
    """Both get `error` and are closed within the bound; returns the slower one's seconds."""
    started = time.monotonic()
    try:
        assert sio_client.disconnected.wait(BOUND_S), f"{cause}: the Socket.IO socket was still open after {BOUND_S}s"
        assert plain.closed.wait(max(0.1, BOUND_S - (time.monotonic() - started))), (
            f"{cause}: the Channels socket was still open after {BOUND_S}s")  # fmt: skip
        took = time.monotonic() - started
        print(f"{cause}: both sockets closed {took:.2f} s after the change")
        assert sio_client.events.named(events.ERROR), f"{cause}: the Socket.IO client got no error before closing"
        assert plain.events.named(events.ERROR), f"{cause}: the Channels client got no error before closing"
        return took
    finally:
        sio_client.close()
        plain.close()


def session_key(cookie: str) -> str:
    return cookie.split("=", 1)[1]


USER_CAUSES = {
    "deactivated": lambda user, key: type(user).objects.filter(pk=user.pk).update(is_active=False),
    "password changed": lambda user, key: (user.set_password("a-new-password-123"), user.save()),
    "session expired": lambda user, key: Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)),
    "signed out elsewhere": lambda user, key: Session.objects.filter(session_key=key).delete(),
}  # fmt: skip


@pytest.mark.parametrize("cause", list(USER_CAUSES))
def test_a_user_losing_her_right_loses_her_sockets(daphne_server, ward, cause):
    nurse = make_user(f"rights-{cause.split()[0]}", ward=ward)
    cookie = session_cookie(nurse)
    sio_client, plain = watching(daphne_server.url, cookie=cookie)
    USER_CAUSES[cause](nurse, session_key(cookie))
    assert_closed_with_error(sio_client, plain, cause)


@pytest.mark.parametrize("cause", ["revoked", "deleted"])
def test_a_service_account_losing_its_token_loses_its_sockets(daphne_server, ward, cause):
    account, token = service_account_create(name=f"rights-{cause}")
    account.wards.add(ward)
    sio_client, plain = watching(daphne_server.url, token=token)
    if cause == "revoked":
        service_account_revoke(account=account)  # its signal fires here, in the test process, not in Daphne
    else:
        ServiceAccount.objects.filter(pk=account.pk).delete()
    assert_closed_with_error(sio_client, plain, f"service account {cause}")


def test_ward_removal_unsubscribes_and_stops_the_alarms(daphne_server, ward):
    nurse = make_user("rights-ward", ward=ward)
    cookie = session_cookie(nurse)
    sio_client, plain = watching(daphne_server.url, cookie=cookie)
    bridge = InternalClient(daphne_server.internal_url, settings.BRIDGE_INTERNAL_SECRET)
    try:
        ward.members.remove(nurse)
        refused = lambda e, d: e == events.ERROR and d.get("deviceId") == PUMP  # noqa: E731
        sio_client.events.wait_for(refused, timeout=BOUND_S)
        plain.events.wait_for(refused, timeout=BOUND_S)
        alarm = {"alarm": {"id": 9, "type": "occlusion", "state": "active", "priority": "high"}}
        changes_commit(PUMP, [(events.DEVICE_ALARM, alarm)])
        bridge.wake()
        time.sleep(1.0)
        assert not sio_client.events.named(events.DEVICE_ALARM), "a nurse removed from the ward still got its alarm"
        assert not plain.events.named(events.DEVICE_ALARM), "the Channels client still got the ward's alarm"
    finally:
        bridge.close()
        sio_client.close()
        plain.close()
