"""When a person pressed (`askedAt`), as her page tells it: a request held up in the network is judged by it.

A network that stalls without closing (Wi-Fi, a proxy) holds a request and delivers it once it recovers, seconds or
minutes later: it then asks for what the screen showed at the press, not what is so now. The page sends the moment of
the press on the server's clock as it knows it (`static/js/page_clock.js` `serverNowMs`: learned from the page's render
time and each `/api/bridge/` poll, so a browser clock that is off does not count; the estimate runs late by at most a
poll's round trip, which makes a request look younger, never older). The ward's silence (`realtime/sio/silence.py`,
review 32) and a person's Pause, Resume and Stop (`requests.infusion_request`, review 46) are refused when that moment
is more than ASKED_AT_MOST_S before the server's clock.
"""

from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

# A request asked longer ago than this, on the server's clock, was held up: refused, never carried out late.
ASKED_AT_MOST_S = 5.0
ASKED_AT_EXPECTED = "Expected {askedAt: ...} as an ISO 8601 time with its offset"


def asked_moment(value: Any) -> datetime | None:
    """The press a request's `askedAt` tells (ISO 8601 with its offset), or None when it is not such a time."""
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None
