"""Django admin for device records: pumps editable; sessions, commands, alarms read-mostly; logs read-only."""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from devices import (
    admin_axes,  # noqa: F401  (axes' sign-in records, without its unguarded action)
    admin_users,  # noqa: F401  (users: a ward's last watcher is not deactivated, made staff or deleted)
)
from devices.admin_forms import AlarmResolveForm, DeviceAdminForm, WardAdminForm
from devices.admin_refusals import ServiceDeletes
from devices.exceptions import PumpStreamError
from devices.forms import alert_number_text
from devices.models import (
    Alarm,
    BridgeStatus,
    Command,
    DeadLetter,
    Device,
    DeviceEvent,
    EscalationDelivery,
    InfusionSession,
    ProgressSample,
    ServiceAccount,
    Ward,
    WardSilence,
)
from devices.services.accounts import service_account_create, service_account_revoke
from devices.services.alarm_rules import alarm_resolve
from devices.services.registration import (
    pump_delete,
    pump_delete_blockers,
    pump_register,
    pump_registration_save,
    ward_delete,
    ward_delete_blockers,
)
from devices.services.requests import infusion_record_end
from devices.services.watchers import ward_members_set
from devices.states import AlarmState, Presence
from devices.views.pages import RESOLVE_PERMISSION
from protocol.limits import MINUTES_PER_HOUR

# Review 47, L1: ticked "has presence", a pump's earlier `online` no longer vouches for it (`registration.
# _presence_unvouched`); an idle pump says nothing until it next connects, so the editor is told why it reads Stale.
PRESENCE_NOT_YET_VOUCHED = (
    "{pump} now has presence, but reads Stale until it next connects: the online it said before vouches for nothing. "
    "Reconnect it (switch it off and on, or restart its network link) to have it read Online."
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only records: never added, changed or deleted by hand."""

    show_full_result_count = False  # keeps list pages fast on millions of rows

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadMostlyAdmin(ReadOnlyAdmin):
    """State changes go through services (the pages and the bridge), never through admin edits."""


@admin.register(Ward)
class WardAdmin(ServiceDeletes, admin.ModelAdmin):
    form = WardAdminForm
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    filter_horizontal = ["members"]

    def get_readonly_fields(self, request: HttpRequest, obj: Ward | None = None) -> list[str]:
        """A ward's code is fixed once made: every pump's status, feed and change names its ward by it."""
        return ["code"] if obj is not None else []

    def save_related(self, request: HttpRequest, form: WardAdminForm, formsets: list, change: bool) -> None:
        """Its members through `ward_members_set` (a relief added before the nurse she replaces is removed), then
        Django's (the members already as chosen)."""
        ward_members_set(ward=form.instance, members=form.cleaned_data["members"])
        super().save_related(request, form, formsets, change)

    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple:
        """Django's, with each pump that keeps a ward from being deleted shown as protected: the page then refuses."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = [f"Ward {ward.code}: {blocker} (move the pump to another ward first)"
                  for ward in objs for blocker in ward_delete_blockers(ward=ward)]  # fmt: skip
        return deleted, counts, perms_needed, [*protected, *in_use]

    def delete_one(self, obj: Ward, *, user) -> None:
        """Through `ward_delete`: its pumps' screens learn they have no ward any more; refused if one of its pumps
        came into use since the page was shown."""
        ward_delete(ward=obj, user=user)


@admin.register(Device)
class DeviceAdmin(ServiceDeletes, admin.ModelAdmin):
    form = DeviceAdminForm
    list_display = ["device_id", "name", "ward", "bed", "pump_state", "connectivity", "last_seen_at", "battery_level",
                    "max_rate_ml_h"]  # fmt: skip
    list_filter = ["ward", "pump_state", "has_presence", "presence"]
    search_fields = ["device_id", "name", "serial_number", "bed"]
    readonly_fields = [
        "presence", "last_seen_at", "reported_status", "pump_state", "battery_level",
        "latest_progress", "latest_progress_at", "boot_id", "last_uptime_ms", "last_uptime_at", "seq_applied",
        "event_seq", "created_at",
    ]  # fmt: skip  # the bridge's: the boot markers written back stale would read as a restart (`restarts.py`)

    def get_readonly_fields(self, request: HttpRequest, obj: Device | None = None) -> list[str]:
        """A registered pump's id is fixed: its topics, rooms and screens know it by it."""
        return [*self.readonly_fields, "device_id"] if obj is not None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Device, form: DeviceAdminForm, change: bool) -> None:
        """A new pump through `pump_register`, an edit through `pump_registration_save` (its lock, its change). Their
        refusal (the pump came into use since the form was checked) is not caught here: `RefusalsSaid` rolls the
        whole save back and says it, and Django's history entry, written after this, is never written."""
        if not change:
            pump_register(device=obj, user=request.user)
            return
        model_fields = {field.name for field in Device._meta.concrete_fields}
        fields = {name for name in form.changed_data if name in model_fields}
        if "max_rate_ml_h" in form.changed_data:
            fields.add("max_rate_ml_min")
        stored = pump_registration_save(device=obj, fields=fields, user=request.user)
        if "has_presence" in fields and stored.has_presence and stored.presence != Presence.ONLINE:
            self.message_user(request, PRESENCE_NOT_YET_VOUCHED.format(pump=stored.device_id), messages.WARNING)

    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple:
        """Django's, with a pump in use (an infusion on, an active alarm) shown as protected: the page then refuses,
        saying so rather than that its alarm records may not be deleted (Django shows only that when both hold)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = [f"{blocker} (resolve the alarm or end the infusion first)" for device in objs
                  for blocker in pump_delete_blockers(device=device)]  # fmt: skip
        return deleted, counts, set() if in_use else perms_needed, [*protected, *in_use]

    def delete_one(self, obj: Device, *, user) -> None:
        """Through `pump_delete`: refused, under the pump's lock, if it came into use since the page was shown."""
        pump_delete(device=obj, user=user)

    @admin.display(description="connectivity")
    def connectivity(self, obj: Device) -> str:
        return obj.connectivity()

    @admin.display(description="maximum rate (mL/h)")
    def max_rate_ml_h(self, obj: Device) -> float:
        return round(obj.max_rate_ml_min * MINUTES_PER_HOUR, 2)


@admin.register(InfusionSession)
class InfusionSessionAdmin(ReadMostlyAdmin):
    list_display = ["infusion_id", "device", "status", "drug", "rate_ml_h", "planned_volume_ml", "delivered_in_all",
                    "created_at"]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["infusion_id", "device__device_id", "drug"]
    list_select_related = ["device"]
    actions = ["end_record"]

    @admin.action(description="End the record (the pump is not running it; nothing is sent to the pump)",
                  permissions=["command"])  # fmt: skip
    def end_record(self, request: HttpRequest, queryset) -> None:
        """A ghost infusion ends `interrupted`, audited with the administrator's name; one the pump reports running or
        paused, or still pending, is refused (`infusion_record_end`) and said so, and "Ended" counts only what was
        ended."""
        ended = 0
        for infusion_id in queryset.values_list("infusion_id", flat=True):
            try:
                infusion_record_end(infusion_id=infusion_id, user=request.user, reason="ended in the admin")
                ended += 1
            except PumpStreamError as exc:
                messages.error(request, f"{infusion_id}: {exc.message}")
        if ended:
            messages.success(request, f"Ended {ended} infusion record(s).")

    def has_command_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("devices.command_device")

    @admin.display(description="rate (mL/h)")
    def rate_ml_h(self, obj: InfusionSession) -> float:
        return round(obj.flow_rate_ml_min * MINUTES_PER_HOUR, 2)

    @admin.display(description="delivered in all (mL)")
    def delivered_in_all(self, obj: InfusionSession) -> float | None:
        """Each run of the pump's delivered count, its highest, summed: never only the count after a reset."""
        total = obj.delivered_in_all_ml
        return round(total, 2) if total is not None else None


@admin.register(Command)
class CommandAdmin(ReadMostlyAdmin):
    list_display = ["command_id", "device", "kind", "state", "created_by", "created_at", "expires_at"]
    list_filter = ["state", "kind"]
    search_fields = ["command_id", "device__device_id"]
    list_select_related = ["device", "created_by"]


SHOWN_ALERTS = "shown_alerts_{}"  # the alert number the list showed for an alarm, posted with the resolve action


@admin.register(Alarm)
class AlarmAdmin(ReadMostlyAdmin):
    list_display = ["type", "type_reported", "device", "priority", "state", "count", "alert_shown", "raised_at",
                    "acknowledged_by", "escalation_level", "resolved_by", "resolved_reason"]  # fmt: skip
    list_filter = ["state", "priority", "source", "escalation_level"]
    search_fields = ["type", "type_reported", "error_code", "device__device_id"]
    list_select_related = ["device", "acknowledged_by", "resolved_by"]
    action_form = AlarmResolveForm
    actions = ["resolve"]

    @admin.action(description="Resolve selected alarms (reason and note above)", permissions=["resolve"])
    def resolve(self, request: HttpRequest, queryset) -> None:
        """Clear stuck alarms by hand through `alarm_resolve`: audited and shown to everyone watching."""
        reason, note = request.POST.get("reason", ""), request.POST.get("note", "")
        for alarm in queryset.filter(state=AlarmState.ACTIVE):
            shown = request.POST.get(SHOWN_ALERTS.format(alarm.pk), "")
            try:  # an alarm not listed on this page (all selected across pages) was not seen: refused as changed
                alarm_resolve(alarm_id=alarm.pk, user=request.user, reason=reason, note=note,
                              alerts=int(shown) if alert_number_text(shown) else -1)  # fmt: skip
            except PumpStreamError as exc:
                self.message_user(request, f"{alarm}: {exc.message}", messages.ERROR)
                return
        self.message_user(request, "Alarms resolved.", messages.SUCCESS)

    @admin.display(description="alert")
    def alert_shown(self, obj: Alarm) -> str:
        """The alert number listed, posted with the resolve action: an alarm that alerted since is refused."""
        return format_html('{} <input type="hidden" name="{}" value="{}">', obj.alerts, SHOWN_ALERTS.format(obj.pk),
                           obj.alerts)  # fmt: skip

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESOLVE_PERMISSION)


@admin.register(DeviceEvent)
class DeviceEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "device", "kind", "topic", "user"]
    list_filter = ["kind"]
    search_fields = ["device__device_id"]
    list_select_related = ["device", "user"]
    date_hierarchy = None


@admin.register(ProgressSample)
class ProgressSampleAdmin(ReadOnlyAdmin):
    list_display = ["recorded_at", "session", "delivered_volume_ml", "progress_percent", "status"]
    list_select_related = ["session"]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "source", "topic", "reason", "detail"]
    list_filter = ["reason"]
    search_fields = ["source", "topic"]


@admin.register(WardSilence)
class WardSilenceAdmin(ReadOnlyAdmin):
    """The audit of the wards' shared silences: who, when, why, how long, and how each ended."""

    list_display = ["started_at", "ward", "started_by", "until", "reason", "priority", "end_reason", "ended_by",
                    "broken_by"]  # fmt: skip
    list_filter = ["ward", "end_reason"]
    list_select_related = ["ward", "started_by", "ended_by", "broken_by"]


@admin.register(EscalationDelivery)
class EscalationDeliveryAdmin(ReadOnlyAdmin):
    """Escalation webhooks: each tier's page of an alarm, its tries, and dead letters (state "Dead-lettered")."""

    list_display = ["created_at", "alarm", "tier", "url", "state", "tries", "last_error", "ended_at"]
    list_filter = ["state", "tier"]
    search_fields = ["alarm__device__device_id", "url"]
    list_select_related = ["alarm"]


@admin.register(BridgeStatus)
class BridgeStatusAdmin(ReadOnlyAdmin):
    list_display = ["name", "heartbeat_at", "broker_connected", "broker_lost_since"]


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ["name", "token_hint", "all_wards", "created_at", "revoked_at", "last_used_at"]
    fields = ["name", "wards", "all_wards", "token_hint", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["token_hint", "created_at", "revoked_at", "last_used_at"]
    filter_horizontal = ["wards"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ServiceAccount, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        account, token = service_account_create(name=obj.name, all_wards=obj.all_wards)
        obj.pk, obj.token_hash, obj.token_hint = account.pk, account.token_hash, account.token_hint
        obj._state.adding = False
        messages.warning(request, f"API token for {account.name} (shown once, copy it now): {token}")

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset) -> None:
        for account in queryset:
            service_account_revoke(account=account)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
