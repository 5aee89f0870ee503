"""The admin's pages when a refusal comes from below them: a service under its locks, or the models' guards.

Each page checks first, in its own words (a change form's errors, a delete page's "protected" list); what comes into
use between that check and the save (an infusion started, an alarm raised: neither takes the ward's lock) is then
refused by the service or guard under its locks (`PumpStreamError`). Uncaught, that was a server error page with the
refusal unsaid (review 36, finding 5). Here the whole save or deletion is rolled back, the refusal is said on the page,
and Django's "changed/deleted successfully" is not, nor is a history entry of what was not done: the "Deleted …" that
Django writes before deleting is taken back (review 37, finding 6); the "Added"/"Changed …" it writes after
`save_model` and `save_related`, in the same transaction, is never written, so those never catch a refusal themselves
(the pump's edit did, and its history said "Changed Ward." of a pump that kept its ward: review 39, finding 5).
"""

from django.contrib import messages
from django.contrib.admin.models import LogEntry
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from devices.exceptions import PumpStreamError


class RefusalsSaid:
    """A change form, a delete page or the bulk delete refused below the page: rolled back, said, page shown again."""

    def changeform_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        """Django's, in a transaction of its own (its own atomic block, rolled back by the refusal): the save, its
        related rows and the history's "Added"/"Changed" entry, which Django writes after them, all taken back."""
        try:
            return super().changeform_view(request, *args, **kwargs)
        except PumpStreamError as refused:
            return self.refused(request, refused)

    def delete_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        """Django's; refused, the delete page again, now listing what keeps the object from being deleted."""
        try:
            return super().delete_view(request, *args, **kwargs)
        except PumpStreamError as refused:
            return self.refused(request, refused)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        """Django's bulk delete (all at once: users deleted together are counted out together), rolled back whole
        when refused; the bulk action runs outside the admin's transaction, so the rollback is this block's."""
        objs = list(queryset)
        try:
            with transaction.atomic():
                super().delete_queryset(request, queryset)
        except PumpStreamError as refused:
            self.delete_refused(request, refused, objs)

    def log_deletions(self, request: HttpRequest, queryset):
        """Django's history entries "Deleted …", written before the deletion: kept on the request, so that a deletion
        then refused takes its entry back (`delete_refused`)."""
        entries = super().log_deletions(request, queryset)
        written = entries if isinstance(entries, list) else [entries]
        request.pumpstream_deletion_entries = [*getattr(request, "pumpstream_deletion_entries", []), *written]
        return entries

    def refused(self, request: HttpRequest, refused: PumpStreamError) -> HttpResponse:
        self.message_user(request, refused.message, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def delete_refused(self, request: HttpRequest, refused: PumpStreamError, objs: list) -> None:
        """Said on the page; the history's "Deleted …" of `objs`, still there, taken back."""
        request.pumpstream_delete_refused = True
        self.message_user(request, refused.message, messages.ERROR)
        kept = {str(obj.pk) for obj in objs}
        entries = [entry for entry in getattr(request, "pumpstream_deletion_entries", []) if entry is not None]
        LogEntry.objects.filter(pk__in=[entry.pk for entry in entries if str(entry.object_id) in kept]).delete()

    def message_user(self, request: HttpRequest, message: str, level: int = messages.INFO, *args, **kwargs) -> None:
        """Django's, except its success message after a deletion that was refused (all or in part)."""
        if level == messages.SUCCESS and getattr(request, "pumpstream_delete_refused", False):
            return
        super().message_user(request, message, level, *args, **kwargs)


class ServiceDeletes(RefusalsSaid):
    """Deletion through a service (`delete_one`) that may refuse under its lock, one by one: the others are still
    deleted when one is refused."""

    def delete_one(self, obj, *, user) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj) -> None:
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for obj in queryset:
            try:
                self.delete_one(obj, user=request.user)
            except PumpStreamError as refused:
                self.delete_refused(request, refused, [obj])
