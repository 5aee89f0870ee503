"""Reads of the bridge leases (`devices/services/leases.py` writes them), on the database's clock."""

from datetime import datetime, timedelta

from django.db.models.functions import Now

from devices.models import BridgeLease


def leases_settled(*, names: list[str], grace_s: float) -> dict[str, datetime | None]:
    """The leases of `names` held now whose MQTT session has been connected for at least `grace_s`, each
    with how far its owner has applied what it received (`caught_up_at`)."""
    settled = BridgeLease.objects.filter(
        name__in=names, expires_at__gt=Now(), connected_since__lte=Now() - timedelta(seconds=grace_s)
    )
    return dict(settled.values_list("name", "caught_up_at"))


def leases_read(*, names: list[str]) -> dict[str, BridgeLease]:
    """The lease rows of `names` that exist, by name."""
    return {lease.name: lease for lease in BridgeLease.objects.filter(name__in=names)}


def leases_alive(*, names: list[str], besides: str) -> set[str]:
    """The leases of `names` held now by an owner other than `besides`."""
    alive = BridgeLease.objects.filter(name__in=names, expires_at__gt=Now()).exclude(owner=besides)
    return set(alive.values_list("name", flat=True))


def lease_epochs(*, names: list[str], owner: str) -> dict[str, datetime]:
    """When `owner` claimed each lease of `names` it holds (`acquired_at`: the epoch its batches are fenced by)."""
    return dict(BridgeLease.objects.filter(name__in=names, owner=owner).values_list("name", "acquired_at"))
