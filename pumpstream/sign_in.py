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
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone


def address_failures(ip_address: str | None) -> int:
    """Wrong passwords from one address within the cool-off, over every username."""
    if not ip_address:
        return 0
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    attempts = AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gt=since)
    return attempts.aggregate(failures=Sum("failures_since_start"))["failures"] or 0


class AddressBudgetHandler(AxesDatabaseHandler):
    """axes' database handler, the address's failures over its budget counting as the pair's limit reached."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> Any:
        failures = super().get_failures(request, credentials)
        limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT
        if limit and address_failures(getattr(request, "axes_ip_address", None)) >= limit:
            request.sign_in_address_locked = True  # the lock-out page says why
            return max(failures, get_failure_limit(request, credentials))
        return failures
