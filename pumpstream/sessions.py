"""Session lifetime: an idle timeout for clinicians, and the view-only wall-screen stations exempt from it.

A session ends `SESSION_IDLE_TIMEOUT_S` (default 12 h) after its last request. A **station account** is a
user in the group `STATION_GROUP` (default "Ward stations") holding neither `devices.command_device` nor
`devices.acknowledge_alarm`: a wall screen that only watches. Its session lasts `STATION_SESSION_AGE_S`
(default 90 days) after its last request instead, so a wall screen never signs itself out silently after
a quiet night; a station given command rights is a clinician's account again and times out like one.
Open sockets follow the session: `realtime/sio/rights.py` closes them within seconds once it has expired.
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from devices.access_selectors import user_in_group

REFRESHED_AT = "_pumpstream_seen_at"
REFRESH_EVERY_S = 60  # a session is written at most once a minute just to move its expiry


def user_is_station(user) -> bool:
    """Whether `user` is a view-only station account (see the module docstring)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if not user_in_group(user, settings.STATION_GROUP):
        return False
    return not (user.has_perm("devices.command_device") or user.has_perm("devices.acknowledge_alarm"))


def session_age_for(user) -> int:
    """How long `user`'s session lives after its last request, in seconds."""
    return settings.STATION_SESSION_AGE_S if user_is_station(user) else settings.SESSION_IDLE_TIMEOUT_S


class SessionIdleTimeoutMiddleware:
    """Moves a signed-in session's expiry to its idle limit from now (at most once a minute)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if (
            session is None
            or not getattr(user, "is_authenticated", False)
            or not session.session_key
            and not session.modified
        ):
            return response
        now = int(time.time())
        if now - session.get(REFRESHED_AT, 0) >= REFRESH_EVERY_S:
            session.set_expiry(session_age_for(user))
            session[REFRESHED_AT] = now
        return response
