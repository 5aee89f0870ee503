"""django-axes' sign-in records in this project's admin, without axes' "Clean up expired attempts" action.

axes 8.3 registers `AccessAttempt` with `cleanup_expired_attempts` and no `permissions=`, so whoever may view the
list (an auditor) is offered it. Run from the admin it fails (it reads `request.axes_attempt_time`, set only on a
sign-in request), and its threshold is that time plus the cool-off, so, working, it would delete current lock-outs
too. Deleting attempts stays possible with the delete permission (`delete_selected`). Registered again here
(`devices` comes after `axes` in INSTALLED_APPS).
"""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin


class AccessAttemptAdminWithoutCleanup(AccessAttemptAdmin):
    """axes' admin of sign-in attempts, its own action removed."""

    actions = []


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdminWithoutCleanup)
