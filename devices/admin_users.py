"""Django's user admin, refusing what would leave a ward holding a pump in use watched by no one.

A user who watches her wards (active, not staff: `ward_is_watched`) is not deactivated, made staff or deleted while
she is the last to watch one of them with a pump in use (`watchers.members_leaving_refusals`): the change form says so
under the box, the delete page (and the bulk delete, its users counted out together) lists it as what keeps her from
being deleted. Registered again here (`devices` comes after `django.contrib.auth` in INSTALLED_APPS). The same rule
guards the models below (`watchers_guard_connect`), for what comes by no page; here it is said first, in the page's
words, and a refusal of the models' guard after the page's check (the pump came into use meanwhile) is said on the
page too (`admin_refusals.RefusalsSaid`).
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.http import HttpRequest

from devices.admin_refusals import RefusalsSaid
from devices.services.watchers import members_leaving_refusals


class WatchingUserChangeForm(UserChangeForm):
    """Django's user form; unticking "Active" or ticking "Staff status" of a ward's last watcher is refused."""

    def clean(self) -> dict:
        cleaned = super().clean()
        leaving = {"is_active": (cleaned.get("is_active") is False, "deactivating {names}"),
                   "is_staff": (cleaned.get("is_staff") is True, "making {names} staff")}  # fmt: skip
        for field, (stops, how) in leaving.items():
            if self.instance.pk and field in self.changed_data and stops:
                for refusal in members_leaving_refusals(users=[self.instance.pk], how=how):
                    self.add_error(field, refusal)
        return cleaned


class WatchingUserAdmin(RefusalsSaid, UserAdmin):
    """Django's user admin with `WatchingUserChangeForm`, and a ward's last watcher protected from deletion."""

    form = WatchingUserChangeForm

    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple:
        """Django's, with each ward the deletion would leave watched by no one shown as protected: the page refuses. The
        users selected together are counted out together: a ward's two nurses, each the other's only fellow, are
        not deleted at once."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        unwatched = members_leaving_refusals(users=[user.pk for user in objs], how="deleting {names}")
        return deleted, counts, perms_needed, [*protected, *unwatched]


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, WatchingUserAdmin)
