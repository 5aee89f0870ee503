"""Selectors of the wards' silences: the silence on now in each ward, and each ward's latest (how it ended)."""

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from devices.models import Ward, WardSilence


def ward_silences_current(*, codes: set[str] | None = None, now=None) -> dict[str, WardSilence]:
    """The silence on now in each of these wards (every ward when `codes` is None), by ward code."""
    silences = WardSilence.objects.filter(ended_at__isnull=True, until__gt=now or timezone.now())
    if codes is not None:
        silences = silences.filter(ward__code__in=codes)
    return {silence.ward.code: silence for silence in silences.select_related("ward", "started_by")}


SILENCE_RELATED = ("ward", "started_by", "ended_by", "broken_by__device")


def ward_silence_latest(code: str) -> WardSilence | None:
    """The ward's most recent silence, on or ended (to say how it ended)."""
    return WardSilence.objects.filter(ward__code=code).select_related(*SILENCE_RELATED).first()


def ward_silences_latest(*, codes: set[str] | None = None) -> dict[str, WardSilence | None]:
    """Each of these wards' (every ward's when None) most recent silence, on or ended; None for a ward never
    silenced (two queries, whatever the number of wards)."""
    wards = Ward.objects.all() if codes is None else Ward.objects.filter(code__in=codes)
    latest = WardSilence.objects.filter(ward=OuterRef("pk")).order_by("-started_at", "-pk").values("pk")[:1]
    ids = dict(wards.annotate(latest=Subquery(latest)).values_list("code", "latest"))
    silences = WardSilence.objects.select_related(*SILENCE_RELATED).in_bulk([pk for pk in ids.values() if pk])
    return {code: silences.get(pk) for code, pk in ids.items()}
