"""Selectors of who may watch what, as the realtime server re-reads it: pumps and wards visible to a principal,
its credentials (sessions, users, service accounts) and ward membership."""

from collections.abc import Collection
from datetime import datetime

from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import QuerySet, Sum

from devices.models import Device, ServiceAccount, Ward
from devices.selectors import devices_visible_to, wards_visible_to
from devices.services.sql import select_in_sql


def device_ids_visible_to(principal, *, among: set[str] | None = None) -> set[str]:
    """The ids of the pumps `principal` (a user or service account) may see, of `among` when given (one query)."""
    devices = devices_visible_to(principal)
    if among is not None:
        devices = devices.filter(device_id__in=among)
    return set(devices.values_list("device_id", flat=True))


def device_ids_visible_to_each(requests: list[tuple[object, set[str]]]) -> list[set[str]]:
    """`device_ids_visible_to(principal, among=...)` for many `(principal, among)` at once, in the same order (the
    rights re-check of every connected socket): two queries for every user together (the watched pumps' wards,
    the users' ward memberships) instead of one a user; the rule is `devices_visible_to`'s (a user sees the pumps
    of the wards she is a member of, staff every pump), checked against it by the tests. Service accounts (few)
    are read one by one through it; nothing watched asks nothing.
    """
    watched = set().union(*(among for _, among in requests))
    ward_of = dict(Device.objects.filter(device_id__in=watched).values_list("device_id", "ward_id")) if watched else {}
    members = [p.pk for p, among in requests if among and _is_member_user(p)]
    wards_of: dict[int, set[int]] = {}
    if members:
        through = Ward.members.through.objects.filter(user_id__in=members).values_list("user_id", "ward_id")
        for user_id, ward_id in through:
            wards_of.setdefault(user_id, set()).add(ward_id)
    visible = []
    for principal, among in requests:
        if not among or not (isinstance(principal, ServiceAccount) or getattr(principal, "is_authenticated", False)):
            visible.append(set())
        elif isinstance(principal, ServiceAccount):
            visible.append(device_ids_visible_to(principal, among=among))
        elif principal.is_staff:
            visible.append({device_id for device_id in among if device_id in ward_of})
        else:
            mine = wards_of.get(principal.pk, set())
            visible.append({device_id for device_id in among if ward_of.get(device_id) in mine})
    return visible


def device_ids_registered(device_ids: set[str]) -> set[str]:
    """Those of these pump ids that are registered now (one query): the others were deleted."""
    return set(Device.objects.filter(device_id__in=device_ids).values_list("device_id", flat=True))


def _is_member_user(principal) -> bool:
    return (
        not isinstance(principal, ServiceAccount)
        and getattr(principal, "is_authenticated", False)
        and (not principal.is_staff)
    )


def devices_for_overview(principal, *, ward_code: str = "") -> list[Device]:
    """The pumps `principal` may see (of one ward when `ward_code`), by ward, bed and id, as the overview lists them."""
    devices = devices_visible_to(principal).order_by("ward__code", "bed", "device_id")
    return list(devices.filter(ward__code=ward_code) if ward_code else devices)


def device_is_visible_to(principal, device_id: str) -> bool:
    """Whether `principal` may see this pump (False for an unknown pump)."""
    return devices_visible_to(principal).filter(device_id=device_id).exists()


def ward_codes_of(principal) -> list[str]:
    """The wards a user (staff: every ward) or service account belongs to, pumps or not."""
    if isinstance(principal, ServiceAccount):
        return list(principal.wards.values_list("code", flat=True))
    return list(wards_visible_to(principal).values_list("code", flat=True))


def ward_named(code: str) -> Ward | None:
    """The ward with this code, or None."""
    return Ward.objects.filter(code=code).first()


def ward_has_member(*, ward: Ward, user) -> bool:
    """Whether `user` belongs to `ward` (membership only: staff are not members by being staff)."""
    return ward.members.filter(pk=user.pk).exists()


def ward_is_watched(ward: Ward, *, without: Collection[int] = ()) -> bool:
    """Whether someone of the ward watches its pumps: an active member who is not staff (its nurses, its station's wall
    screen, its escalation tiers' recipients all belong to it). Staff see every ward's pumps on their own overview
    only, no ward's station or page; a service account feeds an integration, not the ward's screens or pagers.
    `without`: the pks of members about to leave it (removed, deactivated, made staff, deleted)."""
    return watchers_among(ward.members.exclude(pk__in=without)).exists()


def watchers_among(users: QuerySet) -> QuerySet:
    """Those of `users` who watch the wards they belong to (`ward_is_watched`): active and not staff."""
    return users.filter(is_active=True, is_staff=False)


def user_in_group(user, group: str) -> bool:
    """Whether `user` is in the named group."""
    return user.groups.filter(name=group).exists()


def service_accounts_by_pk(*, pks: set[int]) -> dict[int, ServiceAccount]:
    """These service accounts as stored now, by pk (a deleted one is left out)."""
    return {account.pk: account for account in ServiceAccount.objects.filter(pk__in=pks)}


def sessions_unexpired(*, keys: list[str], now: datetime) -> list[tuple[str, str]]:
    """`(session key, stored session data)` of those of `keys` not expired at `now` (database sessions).

    The SQL is written once per number of keys (`select_in_sql`): the rights re-check asks every 2 s for every
    connected session, and the ORM building the `IN` query for 100 keys cost more than running it (issue 17's idle
    target, `bench/README.md` 2026-12-07 session 40)."""
    expiry = connection.ops.quote_name(Session._meta.get_field("expire_date").column)
    sql = f"{select_in_sql(Session, ('session_key', 'session_data'), (('session_key', len(keys)),))} AND {expiry} > %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*keys, connection.ops.adapt_datetimefield_value(now)])
        return [(key, data) for key, data in cursor.fetchall()]


def users_by_pk(*, pks: set) -> list:
    """These users (of the project's user model) as stored now."""
    return list(get_user_model()._default_manager.filter(pk__in=pks))


def sign_in_failures_from(ip_address: str, *, since: datetime) -> int:
    """Wrong passwords from one address since `since`, over every username (django-axes' records: one row per
    username and address; `pumpstream/sign_in.py` locks an address over its budget)."""
    attempts = AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gt=since)
    return attempts.aggregate(failures=Sum("failures_since_start"))["failures"] or 0
