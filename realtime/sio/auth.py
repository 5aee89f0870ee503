"""Who is connecting: a signed-in user (the Django session cookie) or a service account (its API token)."""

import hashlib
import logging
import re
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user, get_user_model
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from devices.access_selectors import sessions_unexpired, users_by_pk
from devices.models import ServiceAccount
from devices.selectors import service_account_for_token
from realtime.sio.database import db_thread

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """An authenticated connection's identity: a user (with its session) or a service account."""

    user: Any = None
    account: ServiceAccount | None = None
    session_hash: str | None = None  # the credential it connected with: a session's hash, or a token's name
    session_key: str | None = field(default=None, repr=False)  # a user's Django session, re-checked while connected

    @property
    def subject(self) -> Any:
        """What visibility selectors take: the user or the service account."""
        return self.account if self.account is not None else self.user

    @property
    def label(self) -> str:
        """A name safe for logs."""
        return f"service:{self.account.name}" if self.account is not None else f"user:{self.user.pk}"


@dataclass
class _SessionRequest:
    """The part of a request `get_user` reads."""

    session: Any


def session_hash(session_key: str) -> str:
    """A stable, non-secret name for a Django session (used for room and group names)."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def account_credential(account_id: int) -> str:
    """The credential name of a service account's token: its connections close together when it is revoked."""
    return f"account-{account_id}"


SESSION_KEY_TEXT = re.compile(r"[A-Za-z0-9]{1,128}")  # what Django's session keys are made of ([a-z0-9]{32})


def session_key_from_cookie_header(cookie_header: str | None) -> str | None:
    """The Django session key in a `Cookie` header, if any: the last cookie of its name, as `request.COOKIES` keeps.

    Read on the event loop from a header anyone may send, so by a plain split and never `http.cookies`, whose
    unquoting is quadratic on backslashes on Python 3.11.7 (CVE-2024-7592: 0.3 s of the loop for 15 KB). A header
    over `COOKIE_HEADER_MAX_BYTES` (refused at the edge already) carries no session; a quoted value is taken
    without its quotes, and only a value of a session key's characters is one.
    """
    if not cookie_header or len(cookie_header) > settings.COOKIE_HEADER_MAX_BYTES:
        return None
    found = None
    for part in cookie_header.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip() == settings.SESSION_COOKIE_NAME:
            found = value.strip()
    if found and len(found) >= 2 and found[0] == found[-1] == '"':
        found = found[1:-1]
    return found if found and SESSION_KEY_TEXT.fullmatch(found) else None


async def user_for_session_key(session_key: str) -> Any:
    """The signed-in, active user of a Django session, or None."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user = await db_thread(get_user)(_SessionRequest(session=store))
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return user


async def authenticate(cookie_header: str | None, auth: Any) -> Principal | None:
    """A principal from an API token (`auth: {token}`) or else the session cookie; None when neither holds."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is not None:
        account = await db_thread(service_account_for_token)(token)
        return Principal(account=account, session_hash=account_credential(account.pk)) if account else None
    session_key = session_key_from_cookie_header(cookie_header)
    if session_key is None:
        return None
    user = await user_for_session_key(session_key)
    if user is None:
        return None
    return Principal(user=user, session_hash=session_hash(session_key), session_key=session_key)


def users_of_sessions(session_keys: set[str]) -> dict[str, Any]:
    """The signed-in user of each session as `django.contrib.auth.get_user` would find it, or None.

    Read in a few queries whatever the number of sessions (the rights re-check reads every connected one
    every 2 s): sessions not expired, their users, and the session's password hash still the user's.
    Other session engines than the database's are read one by one through `get_user`. A session's stored
    text is decoded (a signature check and JSON) only when it changed since the last re-check, and each user's
    session hash is computed once per call, however many of its sessions are open (the idle cost of the
    re-check, issue 17: 0.3 ms a socket before).
    """
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return {key: _verified_user(get_user(_SessionRequest(store_class(session_key=key)))) for key in session_keys}
    data: dict[str, dict] = {}
    keys = sorted(session_keys)
    for start in range(0, len(keys), 500):
        rows = sessions_unexpired(keys=keys[start : start + 500], now=timezone.now())
        data.update((key, _decoded(store_class, key, session_data)) for key, session_data in rows)
    user_model = get_user_model()
    ids = {values.get(SESSION_KEY) for values in data.values()} - {None}
    users = {user_model._meta.pk.value_to_string(u): u for u in users_by_pk(pks=ids)}
    hashes = {pk: [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()] for pk, user in users.items()}
    return {key: _session_user(data.get(key, {}), users, hashes) for key in session_keys}


_DECODED: dict[str, tuple[str, dict]] = {}  # session key -> (its stored text, that text decoded)
_DECODED_MAX = 20_000


def _decoded(store_class: Any, session_key: str, session_data: str) -> dict:
    """The session's data, decoded again only when its stored text changed (decoding is a pure function of it)."""
    known = _DECODED.get(session_key)
    if known is not None and known[0] == session_data:
        return known[1]
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    values = store_class().decode(session_data)
    _DECODED[session_key] = (session_data, values)
    return values


def _session_user(values: dict, users: dict[str, Any], hashes: dict[str, list[str]]) -> Any:
    """The user a decoded session names, if its backend is configured and its password hash still holds."""
    user_pk = values.get(SESSION_KEY)
    user, known_hashes = users.get(user_pk), hashes.get(user_pk, [])
    session_auth_hash = values.get(HASH_SESSION_KEY)
    if user is None or values.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS or not session_auth_hash:
        return None
    return user if any(constant_time_compare(session_auth_hash, known) for known in known_hashes) else None


def _verified_user(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def origin_allowed(origin: str | None, *, scheme: str, host: str | None) -> bool:
    """The Socket.IO origin rule: no Origin (not a browser), the same origin, or a configured one."""
    if not origin:
        return True
    configured = settings.SOCKETIO_CORS_ALLOWED_ORIGINS
    if configured:
        return origin in configured
    return host is not None and origin == f"{scheme}://{host}"
