"""Session lifetime: an idle timeout for clinicians, and the view-only wall-screen stations exempt from it.

A session ends `SESSION_IDLE_TIMEOUT_S` (default 12 h) after its last request. A **station account** is a
user in the group `STATION_GROUP` (default "Ward stations") holding neither `devices.command_device` nor
`devices.acknowledge_alarm`: a wall screen that only watches. Its session lasts `STATION_SESSION_AGE_S`
(default 90 days) after its last request instead, so a wall screen never signs itself out silently after
a quiet night; a station given command rights is a clinician's account again and times out like one.
Open sockets follow the session: `realtime/sio/rights.py` closes them within seconds once it has expired.

Only a person's own requests count as activity: what an open page fetches by itself (the bridge poll every 5 s,
the operations page's poll, the monitor's re-reads of its events and history, the waiting window's re-read of its
order: `BACKGROUND_VIEWS`, or any request marked with the `BACKGROUND_HEADER`) never moves a clinician's idle
limit, or a monitor left open on a shared computer would keep its Stop rights signed in for ever. A station's
session is moved by them as by any request (it is exempt from the idle limit: it must never sign itself out).
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from devices.access_selectors import user_in_group

REFRESHED_AT = "_pumpstream_seen_at"
REFRESH_EVERY_S = 60  # a session is written at most once a minute just to move its expiry
# The read-only JSON a page fetches by itself, on a timer or on a live event (static/js: live.js `watchBridge`,
# ops.js, monitor.js, waiting.js; wizard.js asking whether a start whose reply was lost was placed), never by a
# person's click.
BACKGROUND_VIEWS = frozenset(
    {"devices:api_bridge", "devices:api_events", "devices:api_history", "devices:api_infusion",
     "devices:api_infusion_placed", "operations_status"}
)  # fmt: skip
BACKGROUND_HEADER = "X-PumpStream-Background"  # a page's own request of any other view says so with it


def user_is_station(user) -> bool:
    """Whether `user` is a view-only station account (see the module docstring)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if not user_in_group(user, settings.STATION_GROUP):
        return False
    return not (user.has_perm("devices.command_device") or user.has_perm("devices.acknowledge_alarm"))


def is_background(request: HttpRequest) -> bool:
    """Whether the page made this request by itself (a poll, a re-read), not the person using it."""
    if BACKGROUND_HEADER in request.headers:
        return True
    match = getattr(request, "resolver_match", None)
    return request.method in ("GET", "HEAD") and match is not None and match.view_name in BACKGROUND_VIEWS


class SessionIdleTimeoutMiddleware:
    """Moves a signed-in session's expiry to its idle limit from now (at most once a minute), on a person's own
    requests (a station's: on any)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 500:  # nothing done; and the database may be why (its user not read, nor readable)
            return response
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
        if now - session.get(REFRESHED_AT, 0) < REFRESH_EVERY_S:
            return response
        station = user_is_station(user)
        if is_background(request) and not station:
            if session.get_expiry_age() > settings.SESSION_IDLE_TIMEOUT_S:  # a station given rights: 90 days no more
                session.set_expiry(settings.SESSION_IDLE_TIMEOUT_S)
                session[REFRESHED_AT] = now
            return response  # a clinician's page polling by itself is no activity
        session.set_expiry(settings.STATION_SESSION_AGE_S if station else settings.SESSION_IDLE_TIMEOUT_S)
        session[REFRESHED_AT] = now
        return response
