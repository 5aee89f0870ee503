"""Leases between bridge processes on the database's clock (`now()`): claim, renew, release.

Every time here is the database's: a lease expires when PostgreSQL's `now()` passes `expires_at`, so the
hosts' clocks never meet (each process only measures, on its own monotonic clock, how long ago it last
renewed, to let go of its slots before the database could hand them to another process).
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Case, DateTimeField, Value, When
from django.db.models.functions import Now

from devices.models import BridgeLease

NEVER = datetime(2000, 1, 1, tzinfo=UTC)  # the expiry of a lease nobody holds


def lease_claim(*, names: list[str], owner: str, ttl_s: float, expired_for_s: float = 0.0) -> list[str]:
    """Claim every lease of `names` nobody holds or whose holder let it expire `expired_for_s` ago.

    Returns the names claimed now (not those `owner` held already). Two processes claiming at once are
    serialised by the row's lock: the second sees the first's new expiry and claims nothing.
    """
    if not names:
        return []
    BridgeLease.objects.bulk_create([BridgeLease(name=name, expires_at=NEVER) for name in names],
                                    ignore_conflicts=True)  # fmt: skip
    claimed = []
    for name in names:
        free = BridgeLease.objects.filter(name=name, expires_at__lt=Now() - timedelta(seconds=expired_for_s))
        taken = free.exclude(owner=owner).update(
            owner=owner, acquired_at=Now(), expires_at=Now() + timedelta(seconds=ttl_s), connected_since=None
        )
        if taken:
            claimed.append(name)
    return claimed


def lease_renew(
    *, names: list[str], owner: str, ttl_s: float, connected: set[str],
    caught_up: Mapping[str, datetime | None] | None = None,
) -> set[str]:  # fmt: skip
    """Extend the leases of `names` that `owner` still holds; returns those. Records which slots' MQTT
    sessions are connected (`connected_since` set at the first renewal that sees one connected) and, per slot,
    how far the owner has applied its messages (`caught_up`: `caught_up_at`, the owner's clock; None elsewhere)."""
    held = BridgeLease.objects.filter(name__in=names, owner=owner)
    moments = [When(name=name, then=Value(moment)) for name, moment in (caught_up or {}).items() if moment]
    caught_up_at = Case(*moments, default=None, output_field=DateTimeField()) if moments else None
    with transaction.atomic():
        held.filter(name__in=connected, connected_since=None).update(connected_since=Now())
        held.exclude(name__in=connected).exclude(connected_since=None).update(connected_since=None)
        held.update(expires_at=Now() + timedelta(seconds=ttl_s), caught_up_at=caught_up_at)
        return set(held.values_list("name", flat=True))


def leases_fence(*, epochs: dict[str, datetime], owner: str) -> set[str]:
    """Inside the caller's (a batch's) transaction: the leases of `epochs` that `owner` still holds since the claim
    it names (`acquired_at`, set by each claim: the lease's epoch), locked until the caller commits, so another
    process's claim of them waits for that commit. Returns those names; a name missing was taken over since."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("leases_fence must be called inside the batch's transaction")
    held = BridgeLease.objects.select_for_update(no_key=True).filter(name__in=list(epochs), owner=owner)
    return {name for name, acquired_at in held.values_list("name", "acquired_at") if epochs[name] == acquired_at}


def lease_release(*, names: list[str], owner: str) -> int:
    """Give up leases at once (a clean stop): another process may claim them without waiting for expiry."""
    return BridgeLease.objects.filter(name__in=names, owner=owner).update(
        owner="", expires_at=NEVER, connected_since=None
    )
