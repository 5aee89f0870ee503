"""A ward or a pump in use is never deleted, whatever code deletes it, not only `ward_delete` and `pump_delete`.

Deleted from `manage.py shell` (`ward.delete()`, `Ward.objects.filter(...).delete()`), a ward set its pumps' ward to
null by their foreign key (`SET_NULL`), silently: an infusing pump with an alarm sounding dropped off every station and
overview and no one was paged for it, with no change told to its screens. A pump deleted so took its active alarms
with it by cascade, unresolved and unannounced (its infusion and command records protect it in the database: Django
raises `ProtectedError` for those before any signal is sent).

`pre_delete` of a ward or a pump (`deletion_guards_connect`, from `DevicesConfig.ready`) refuses it as the services
do, in their words and codes (`ward_in_use`, `pump_in_use`: the pumps in use and their beds), and logs it: a deletion
made by no page is told only by the logs. It runs inside the deletion's transaction, before any row changes, with the
rows locked to its end (the ward's pumps' and then the ward's, as `ward_delete` locks them; the pump's, as
`pump_delete`): a pump moved into the ward, an infusion started or an alarm raised meanwhile is waited for, then
refuses the deletion or is refused. A queryset's wards are checked together, each ward in use named in one refusal.
The services refuse first, under the same locks, and delete only what is no longer in use, so the guard finds nothing
to refuse on their road (the admin's pages, which go through them). A raw SQL delete sends no signal and stays
unguarded.
"""

import logging
from typing import Any

from django.db.models import QuerySet
from django.db.models.signals import pre_delete

from devices.exceptions import PumpStreamError
from devices.models import Device, Ward
from devices.services.registration import pump_in_use_refusal, ward_deletion_lock, ward_in_use_refusal

logger = logging.getLogger(__name__)


def ward_deletion_guard(*, sender: Any, instance: Ward, origin: Any = None, **_: Any) -> None:
    """`pre_delete` of a ward: refuse deleting a ward holding a pump in use; a queryset's wards (`origin`: a shell's
    `filter(...).delete()`) are checked together. Their pumps' rows are locked, then the wards' (`ward_deletion_lock`,
    as `ward_delete` locks them): an infusion started or an alarm raised on one of its pumps meanwhile is waited for,
    then refuses the deletion; unlocked, the deletion read the pump idle and its foreign key then nulled it, in use
    (PostgreSQL). A pump moved into one of them meanwhile refuses it too (`ward_changed`)."""
    wards = [instance.pk]
    if isinstance(origin, QuerySet) and origin.model is sender:
        wards = list(origin.values_list("pk", flat=True))
    ward_deletion_lock(ward_pks=wards)
    refusals = [refusal for ward in Ward.objects.filter(pk__in=wards).order_by("pk")
                if (refusal := ward_in_use_refusal(ward=ward))]  # fmt: skip
    if refusals:
        logger.warning("deletion of a ward in use refused", extra={"refusals": refusals})
        raise PumpStreamError(" ".join(refusals), code="ward_in_use")


def pump_deletion_guard(*, instance: Device, **_: Any) -> None:
    """`pre_delete` of a pump: refuse deleting a pump with an active alarm (its infusion records already protect it),
    its row locked first, as `pump_delete` locks it."""
    locked = Device.objects.select_for_update().filter(pk=instance.pk).first()
    refusal = pump_in_use_refusal(device=locked) if locked is not None else ""
    if refusal:
        logger.warning("deletion of a pump in use refused", extra={"device_id": locked.device_id, "refusal": refusal})
        raise PumpStreamError(refusal, code="pump_in_use")


def deletion_guards_connect() -> None:
    """Connect the model-level guards (idempotent)."""
    pre_delete.connect(ward_deletion_guard, sender=Ward, dispatch_uid="in-use-ward-deleted")
    pre_delete.connect(pump_deletion_guard, sender=Device, dispatch_uid="in-use-pump-deleted")
