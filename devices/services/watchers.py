"""A ward holding a pump in use is never left watched by no one, whatever the road: its last active member who is not
staff removed from it (the ward's page), deactivated, made staff or deleted (the user's page and its bulk delete).

The same predicate as a pump's move (`ward_is_watched`, `registration.pump_move_refusal`): a ward with no active
member but staff has no nurse, no wall screen and no escalation recipient, so its pumps drop off every station and
overview and no one is paged for their alarms (review 31, finding 3: a pump refused a move into an empty ward got
there in two steps, moved into a ward with one nurse, then the nurse removed from it). Checked with the wards' rows
locked, inside the admin's save: two administrators each removing one of a ward's two nurses do not both pass (a
pump's move locks its destination's row the same way, `registration.ward_lock`).

Below the admin, the same rule guards the models (`watchers_guard_connect`, from `DevicesConfig.ready`): a ward's
members removed or cleared from either side (`ward.members.remove/clear/set`, `user.wards.remove/clear/set`), a user
deleted (one or a queryset at once) or saved inactive or staff, from `manage.py shell` or any code, raise
`PumpStreamError` (`ward_unwatched`) naming the ward, its pumps in use and their beds, and are logged; so does a pump
in use moved into a ward no one watches or left without a ward (`pump_in_use`, as `pump_registration_save` refuses
it): saved (`device.ward = ...; device.save()`, `pre_save`: review 36, finding 4), or written by the pumps' queryset
(`Device.objects.filter(...).update(ward=...)`, `bulk_update(..., ["ward"])`, an upsert's `bulk_create(...,
update_conflicts=True, update_fields=["ward"])`, a ward's `devices.update(...)`: `DeviceQuerySet` sends
`pump_wards_written`, review 39, finding 6), or by Django's own roads, which write through the pumps' base manager,
`DeviceQuerySet` too (`Device.Meta.base_manager_name`): a ward's `devices.add(...)` and `devices.set(...)` (review
40, finding 1), and a ward's deletion nulling its pumps' ward (`SET_NULL`: the ward's deletion guard,
`deletion_guards`, refuses a ward holding a pump in use first, in its words, so this one finds idle pumps only).
The admin's pages refuse first, with their own words, so the guard finds nothing left to refuse there. What neither
Django nor `DeviceQuerySet` announces stays unguarded: a queryset `update()` of users, a delete on the membership
table itself (`Ward.members.through.objects...delete()`), and raw SQL. A move the guard lets through from the shell
tells no screen (no `device:status` change): the admin's page and `pump_registration_save` are the road that does.
"""

import logging
from collections.abc import Collection
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import m2m_changed, pre_delete, pre_save

from devices.access_selectors import ward_is_watched, watchers_among
from devices.exceptions import PumpStreamError
from devices.models import Device, Ward
from devices.services.registration import pump_move_refuse_if_unwatched, pumps_in_use_blockers
from devices.signals import pump_wards_written

logger = logging.getLogger(__name__)


def ward_members_refusal(*, ward: Ward, members: QuerySet) -> str:
    """Why `ward` may not keep only `members` (the ward page's new list); "" if it may."""
    _wards_lock([ward.pk])
    leaving = ward.members.exclude(pk__in=members.values("pk"))
    if watchers_among(members).exists() or not leaving.exists():
        return ""  # still watched, or no one removed: the change leaves it no worse
    return _unwatched_refusal(ward, f"removing {_names(leaving)} from it")


def ward_members_set(*, ward: Ward, members: QuerySet) -> None:
    """Make `members` the ward's members (the ward's page), the newcomers added before the leavers go: Django's `set`
    removes first, and a nurse replaced by her relief would leave the ward, for the guard below, watched by no one."""
    with transaction.atomic():
        ward.members.add(*members)
        ward.members.set(members)


def members_leaving_refusals(*, users: Collection[int], how: str, wards: Collection[int] | None = None) -> list[str]:
    """Why these users (pks) may not all stop watching `wards` (pks; None: every ward of theirs) at once, `how` said
    for the administrator with the ward's leavers for `{names}` ("deactivating {names}"): one refusal per ward that
    would be left watched by no one while a pump of it is in use. All at once: two nurses deleted together are
    both counted out of their ward, not each counted out beside the other."""
    if wards is None:
        wards = Ward.objects.filter(members__in=users).values_list("pk", flat=True).distinct()
    refusals = []
    for ward in _wards_lock(list(wards)):
        leaving = ward.members.filter(pk__in=users)
        if not watchers_among(leaving).exists() or ward_is_watched(ward, without=users):
            continue  # none of them watches it now (inactive, or staff), or someone else still does
        refusal = _unwatched_refusal(ward, how.format(names=_names(leaving)))
        if refusal:
            refusals.append(refusal)
    return refusals


def _wards_lock(ward_pks: list[int]) -> list[Ward]:
    """The wards' rows locked, in one order: a second change of their members waits, then sees this one's (held to
    the end of the caller's transaction: the admin's save; alone, only for the check)."""
    with transaction.atomic():
        return list(Ward.objects.select_for_update().filter(pk__in=ward_pks).order_by("pk"))


def _unwatched_refusal(ward: Ward, how: str) -> str:
    """The refusal for `ward` left watched by no one by `how`; "" when none of its pumps is in use."""
    blockers = pumps_in_use_blockers(devices=list(Device.objects.filter(ward=ward).order_by("device_id")))
    if not blockers:
        return ""
    return (
        f"Ward {ward.code} has pumps in use ({'; '.join(blockers)}): {how} would leave it watched by no one (no active "
        "nurse, station or escalation recipient a member of it): no one would see its pumps or be paged for their "
        f"alarms. Add another member who will watch them to ward {ward.code} first (or move those pumps to a ward "
        "that watches them)."
    )


def _names(users: QuerySet) -> str:
    """The usernames of `users`, for the administrator."""
    return ", ".join(sorted(user.get_username() for user in users))


def membership_removal_guard(*, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **_: Any) -> None:
    """`m2m_changed` of `Ward.members`, either side: refuse a removal or clear that leaves a ward holding a pump in use
    watched by no one, before any row goes (inside the removal's transaction, its wards locked to its end)."""
    if action not in ("pre_remove", "pre_clear"):
        return
    if reverse:  # user.wards: she leaves those wards (clear: every ward of hers)
        users, wards = [instance.pk], (None if action == "pre_clear" else pk_set)
    else:  # ward.members: those members leave it (clear: all of them)
        users = list(instance.members.values_list("pk", flat=True)) if action == "pre_clear" else list(pk_set)
        wards = [instance.pk]
    _refuse(members_leaving_refusals(users=users, wards=wards, how="removing {names} from it"))


def user_leaving_guard(*, instance: Any, raw: bool = False, update_fields: Any = None, **_: Any) -> None:
    """`pre_save` of a user: refuse saving the last watcher of a ward holding a pump in use inactive or staff. Django
    sends it before its own transaction: outside one (the shell's `save()` alone) her wards are locked for the check
    only, so a removal of the ward's other watcher at that very moment is not waited for; in the admin's save (or
    any `transaction.atomic()`) they stay locked to its end."""
    if raw or instance.pk is None or (instance.is_active and not instance.is_staff):
        return
    if update_fields is not None and not {"is_active", "is_staff"} & set(update_fields):
        return  # a sign-in's last_login, a password: not who watches
    how = "deactivating {names}" if not instance.is_active else "making {names} staff"
    _refuse(members_leaving_refusals(users=[instance.pk], how=how))


def user_deletion_guard(*, sender: Any, instance: Any, origin: Any = None, **_: Any) -> None:
    """`pre_delete` of a user: refuse deleting the last watcher of a ward holding a pump in use; a queryset's users
    (`origin`: the admin's bulk delete, a shell's `filter(...).delete()`) are counted out together."""
    users = [instance.pk]
    if isinstance(origin, QuerySet) and origin.model is sender:
        users = list(origin.values_list("pk", flat=True))
    _refuse(members_leaving_refusals(users=users, how="deleting {names}"))


def pump_move_guard(*, instance: Device, raw: bool = False, update_fields: Any = None, **_: Any) -> None:
    """`pre_save` of a pump: refuse saving a pump in use into a ward no one watches, or without a ward
    (`pump_move_refuse_if_unwatched`, the service's own check), its stored row locked first. As for a user's save,
    Django sends it before its own transaction: outside one (the shell's `save()` alone) the rows are locked for the
    check only; inside one (any `transaction.atomic()`, the service's) to its end. A queryset's write sends no
    `pre_save`: `pumps_written_move_guard` below is its road to the same check."""
    if raw or instance.pk is None or (update_fields is not None and not {"ward", "ward_id"} & set(update_fields)):
        return  # Django takes the column's name in `update_fields` too (review 37, finding 5)
    with transaction.atomic():
        stored = Device.objects.select_for_update().filter(pk=instance.pk).first()
        if stored is not None and stored.ward_id != instance.ward_id:
            _pump_move_refuse_if_unwatched(stored, instance.ward)


def pumps_written_move_guard(*, moves: list[tuple[Device, int | None]], **_: Any) -> None:
    """`pump_wards_written` (`DeviceQuerySet`: a queryset's `update()`, `bulk_update()` or upsert of pumps' wards, a
    ward's `devices.add/set` or deletion, which send no `pre_save`): the same refusal for each pump moved, as stored
    before (its row locked), inside the write's transaction, so a refusal takes the whole write back (review 39,
    finding 6). Destinations in ward order, as the wards' other guards lock them."""
    wards = Ward.objects.in_bulk({ward_pk for _, ward_pk in moves if ward_pk is not None})
    for stored, ward_pk in sorted(moves, key=lambda move: (move[1] is not None, move[1] or 0)):
        _pump_move_refuse_if_unwatched(stored, wards.get(ward_pk))


def _pump_move_refuse_if_unwatched(stored: Device, ward: Ward | None) -> None:
    """`pump_move_refuse_if_unwatched` of `stored` into `ward`, logged when refused: a move by no page is told only by
    the logs."""
    try:
        pump_move_refuse_if_unwatched(device=stored, ward=ward)
    except PumpStreamError as refused:
        logger.warning("move of a pump in use refused", extra={"device_id": stored.device_id, "refusal": str(refused)})
        raise


def _refuse(refusals: list[str]) -> None:
    """Raise the refusals (`ward_unwatched`), logged: a change made by no page is told only by the logs."""
    if refusals:
        logger.warning("ward left unwatched refused", extra={"refusals": refusals})
        raise PumpStreamError(" ".join(refusals), code="ward_unwatched", field="members")


def watchers_guard_connect() -> None:
    """Connect the model-level guards (idempotent)."""
    user_model = get_user_model()
    m2m_changed.connect(membership_removal_guard, sender=Ward.members.through, dispatch_uid="watchers-members")
    pre_save.connect(user_leaving_guard, sender=user_model, dispatch_uid="watchers-user-saved")
    pre_delete.connect(user_deletion_guard, sender=user_model, dispatch_uid="watchers-user-deleted")
    pre_save.connect(pump_move_guard, sender=Device, dispatch_uid="watchers-pump-moved")
    pump_wards_written.connect(pumps_written_move_guard, sender=Device, dispatch_uid="watchers-pumps-written")
