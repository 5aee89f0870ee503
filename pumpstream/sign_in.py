"""Sign-in throttling: django-axes' lock of one (username, address) pair, plus a failure budget per address.

axes counts wrong passwords per (username, address), so that an attacker cannot lock a ward's accounts out; alone,
that never slows password spraying (one common password tried over every username of a naming scheme: one failure
each). So an address with `LOGIN_ADDRESS_FAILURE_LIMIT` wrong passwords within `LOGIN_LOCKOUT_MINUTES`, whatever
the usernames, is locked too: every sign-in from it, right password or not, gets axes' 429 page until the oldest
of those failures is that old. The accounts are not locked: the same usernames sign in from other addresses.
"""

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from devices.access_selectors import sign_in_failures_from


class AddressBudgetHandler(AxesDatabaseHandler):
    """axes' database handler, the address's failures over its budget counting as the pair's limit reached."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> Any:
        failures = super().get_failures(request, credentials)
        limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT
        address = getattr(request, "axes_ip_address", None)
        since = timezone.now() - settings.AXES_COOLOFF_TIME
        if limit and address and sign_in_failures_from(address, since=since) >= limit:
            request.sign_in_address_locked = True  # the lock-out page says why
            return max(failures, get_failure_limit(request, credentials))
        return failures
