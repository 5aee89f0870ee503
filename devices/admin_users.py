"""Django's user admin, refusing what would leave a ward holding a pump in use watched by no one.

A user who watches her wards (active, not staff: `ward_is_watched`) is not deactivated, made staff or deleted while
she is the last to watch one of them with a pump in use (`watchers.member_leaving_refusals`): the change form says so
under the box, the delete page (and the bulk delete) lists it as what keeps her from being deleted. Registered again
here (`devices` comes after `django.contrib.auth` in INSTALLED_APPS).
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.http import HttpRequest

from devices.services.watchers import member_leaving_refusals


class WatchingUserChangeForm(UserChangeForm):
    """Django's user form; unticking "Active" or ticking "Staff status" of a ward's last watcher is refused."""

    def clean(self) -> dict:
        cleaned = super().clean()
        name = self.instance.get_username()
        leaving = {"is_active": (cleaned.get("is_active") is False, f"deactivating {name}"),
                   "is_staff": (cleaned.get("is_staff") is True, f"making {name} staff")}  # fmt: skip
        for field, (stops, how) in leaving.items():
            if field in self.changed_data and stops:
                for refusal in member_leaving_refusals(user=self.instance, how=how):
                    self.add_error(field, refusal)
        return cleaned


class WatchingUserAdmin(UserAdmin):
    """Django's user admin with `WatchingUserChangeForm`, and a ward's last watcher protected from deletion."""

    form = WatchingUserChangeForm

    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple:
        """Django's, with each ward a deletion would leave watched by no one shown as protected: the page refuses."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        unwatched = []
        for user in objs:
            unwatched += member_leaving_refusals(user=user, how=f"deleting {user.get_username()}")
        return deleted, counts, perms_needed, [*protected, *unwatched]


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, WatchingUserAdmin)
