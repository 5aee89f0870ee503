"""A ward holding a pump in use is never left watched by no one, whatever the road: its last active member who is not
staff removed from it (the ward's page), deactivated, made staff or deleted (the user's page and its bulk delete).

The same predicate as a pump's move (`ward_is_watched`, `registration.pump_move_refusal`): a ward with no active
member but staff has no nurse, no wall screen and no escalation recipient, so its pumps drop off every station and
overview and no one is paged for their alarms (review 31, finding 3: a pump refused a move into an empty ward got
there in two steps, moved into a ward with one nurse, then the nurse removed from it). Checked with the wards' rows
locked, inside the admin's save: two administrators each removing one of a ward's two nurses do not both pass.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet

from devices.access_selectors import ward_is_watched, watchers_among
from devices.models import Device, Ward
from devices.services.registration import pumps_in_use_blockers


def ward_members_refusal(*, ward: Ward, members: QuerySet) -> str:
    """Why `ward` may not keep only `members` (the ward page's new list); "" if it may."""
    _wards_lock([ward])
    leaving = ward.members.exclude(pk__in=members.values("pk"))
    if watchers_among(members).exists() or not leaving.exists():
        return ""  # still watched, or no one removed: the change leaves it no worse
    return _unwatched_refusal(ward, f"removing {_names(leaving)} from it")


def member_leaving_refusals(*, user: Any, how: str) -> list[str]:
    """Why `user` may not stop watching her wards, `how` said for the administrator ("deactivating nurse-a"): one
    refusal per ward that would be left watched by no one while a pump of it is in use."""
    if not user.pk or not watchers_among(get_user_model().objects.filter(pk=user.pk)).exists():
        return []  # she watches no ward now (inactive, or staff): her wards do not depend on her
    refusals = []
    for ward in _wards_lock(list(user.wards.all())):
        refusal = "" if ward_is_watched(ward, without=[user.pk]) else _unwatched_refusal(ward, how)
        if refusal:
            refusals.append(refusal)
    return refusals


def _wards_lock(wards: list[Ward]) -> list[Ward]:
    """The wards' rows locked, in one order: a second change of their members waits, then sees this one's (held to
    the end of the caller's transaction: the admin's save; alone, only for the check)."""
    with transaction.atomic():
        return list(Ward.objects.select_for_update().filter(pk__in=[ward.pk for ward in wards]).order_by("pk"))


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
