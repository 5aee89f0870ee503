"""An administrator's edit (its name, ward, bed, limits, ...) or deletion of a registered pump, or deletion of a ward:
the one road, like any change."""

import logging
from collections.abc import Collection
from typing import Any

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from devices import payloads
from devices.access_selectors import ward_is_watched
from devices.exceptions import PumpStreamError
from devices.models import Device, RemovedPump, Ward
from devices.selectors import alarms_active_by_device, sessions_current_by_device
from devices.services.changes import change_record, device_lock, event_record, status_changed
from devices.services.silences import ward_silence_break_on_arrival
from devices.signals import pump_ward_changed
from devices.states import Presence
from protocol import events
from protocol.visible_text import without_bidi_controls

logger = logging.getLogger(__name__)

# What `device:status` shows of a pump's registration: an edit of these is a change every screen must learn of.
STATUS_FIELDS = frozenset({"ward", "bed", "has_presence", "presence", "firmware_version"})


def pump_register(*, device: Device, user: Any = None) -> Device:
    """Register a new pump (the admin's "Add"): stored, audited, and a `device:status` change recorded in the same
    transaction, so its ward's stations show it at once, before it is first heard ("never connected").

    A device id whose pump was deleted before goes on from that pump's last `seq` (`RemovedPump`): `seq` never
    restarts for a device id, so no client takes the new pump's changes for the old one's, already seen.

    Its ward's row is locked after its own (`ward_lock`, as a move's): a deletion of the ward under way is waited for
    and refuses the registration (`ward_gone`); one that comes later waits for it, then sees the pump and is refused
    (`ward_changed`). Unlocked, a registration committed between a deletion's check of the ward's pumps and its
    delete was nulled by the deletion's `SET_NULL`, unseen (the pump off every screen of the ward)."""
    for field in Device._meta.concrete_fields:
        setattr(device, field.attname, _as_kept(getattr(device, field.attname)))
    with transaction.atomic():
        device.save(force_insert=True)  # waits for a deletion of this id under way (the unique device id)
        stored = device_lock(device_id=device.device_id)
        if stored.ward_id is not None and ward_lock(ward_pk=stored.ward_id) is None:
            gone = f"Ward {device.ward.code} was deleted while pump {stored.device_id} was being registered into it"
            raise PumpStreamError(f"{gone}: choose its ward again.", code="ward_gone", field="ward")
        removed = RemovedPump.objects.filter(device_id=stored.device_id).first()
        if removed is not None:
            stored.event_seq = removed.last_seq
            Device.objects.filter(pk=stored.pk).update(event_seq=stored.event_seq)
            removed.delete()
        status_changed(device=stored)
        event_record(device=stored, kind="user.pump_registered", user=user, received_at=timezone.now(),
                     payload={"ward": stored.ward.code if stored.ward is not None else None})  # fmt: skip
    return stored


def pump_registration_save(*, device: Device, fields: Collection[str], user: Any = None) -> Device:
    """Store an edit of `fields` of a registered pump (`device` holds the edited values); the stored pump.

    Only those columns are written, under the pump's row lock, so what the bridge committed since the edit
    was read (the pump's `seq`, state, progress) is never written back over. An edit of what the pump's
    status shows (`STATUS_FIELDS`) records a `device:status` change in the same transaction: the change log
    carries it to every subscriber as it carries the bridge's. Audited with the editor's name and, per column, the
    value before and after (a pump's rate limit raised or lowered is read back from the audit).

    `has_presence` turned on or off takes an `online` presence back to not vouched for (`_presence_unvouched`).
    """
    fields = sorted(fields)
    if not fields:
        return device
    with transaction.atomic():
        stored = device_lock(device_id=device.device_id)
        if "ward" in fields and device.ward_id != stored.ward_id:
            pump_move_refuse_if_unwatched(device=stored, ward=device.ward)
        before, had_presence = {name: _audited(stored, name) for name in [*fields, "presence"]}, stored.has_presence
        for name in fields:
            setattr(stored, name, _as_kept(getattr(device, name)))
        written = list(dict.fromkeys([*fields, *_presence_unvouched(stored, had_presence=had_presence)]))
        stored.save(update_fields=written)
        if STATUS_FIELDS.intersection(written):
            status_changed(device=stored)
        changes = {name: {"from": before[name], "to": _audited(stored, name)} for name in written}
        if "ward" in changes and changes["ward"]["from"] != changes["ward"]["to"]:
            pump_ward_changed.send(sender=Device, device=stored)  # who may watch it changed
            ward_silence_break_on_arrival(device=stored)  # its alarm sounding, never heard in its new ward
        event_record(device=stored, kind="user.pump_edited", payload={"fields": fields, "changes": changes},
                     user=user, received_at=timezone.now())  # fmt: skip
    return stored


def _presence_unvouched(device: Device, *, had_presence: bool) -> tuple[str, ...]:
    """`("presence",)` when the edit turned the pump's `has_presence` on or off while its presence is `online`, now
    taken back to `unknown`: not vouched for (as after a broker restart, `pumps.pump_presence_unvouched`) until the pump
    says `online` live again, so it reads "Stale" by its last heard, as a pump without presence, meanwhile.

    That `online` was said under the other setting: a pump without presence says a plain `online` with no Last Will
    behind it, and ticked "has presence" it read "Online · Connected" for ever once silent, no Will ever to come to
    correct it (review 46, M2: a silent paused pump of the original firmware, "Stale" before the tick). Unticked, the
    `online` stays harmless while it is without presence, but a tick again would bring it back."""
    if device.has_presence == had_presence or device.presence != Presence.ONLINE:
        return ()
    device.presence = Presence.UNKNOWN
    return ("presence",)


def _as_kept(value: Any) -> Any:
    """A registration's value as stored: a text (its name, bed, model) without direction controls, whoever typed or
    pasted it. A station names the pump's alarms by its bed ("Bed 4 · Line blocked · for 12 s · ESCALATED"): an
    override left open in it turned the words after it around (review 39, finding 7)."""
    return without_bidi_controls(value) if isinstance(value, str) else value


def _audited(device: Device, name: str) -> Any:
    """A column's value as the audit keeps it: the ward by its code, anything else JSON holds as it is."""
    if name == "ward":
        return device.ward.code if device.ward is not None else None
    value = getattr(device, name)
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def pump_move_refuse_if_unwatched(*, device: Device, ward: Ward | None) -> None:
    """Refuse (`pump_in_use`) a move of a pump in use that no one would watch (`pump_move_refusal`), its destination's
    row locked first, as a removal of its members locks it (`watchers.py`): a removal of its last watcher under way
    is waited for and then seen, and one that comes later waits for this move and then sees the pump there.
    Unlocked, both read the other's change as not yet made and both went through (PostgreSQL), the pump left in a
    ward no one watches."""
    if ward is not None:
        ward_lock(ward_pk=ward.pk)
    refusal = pump_move_refusal(device=device, ward=ward)
    if refusal:
        raise PumpStreamError(refusal, code="pump_in_use", field="ward")


def pump_move_refusal(*, device: Device, ward: Ward | None) -> str:
    """Why this pump, as stored, may not go to `ward` (None: be left without a ward); "" if it may.

    A pump in use (`pumps_in_use_blockers`) goes only to a ward someone watches (`ward_is_watched`): left without a
    ward, or in a ward no one belongs to, it drops off every ward station and clinician's overview and no one is paged
    for its alarms, the very reason its ward is never deleted while it is in use (review 30: an infusing pump moved
    into a new, empty ward vanished from its nurses' screens with "changed successfully")."""
    if ward is not None and (ward.pk == device.ward_id or ward_is_watched(ward)):
        return ""
    if ward is None and device.ward_id is None:
        return ""
    blockers = pumps_in_use_blockers(devices=[device])
    if not blockers:
        return ""
    in_use = f"Pump {device.device_id} is in use ({'; '.join(blockers)})"
    if ward is None:
        return f"{in_use}: it cannot be left without a ward. Move it to another ward instead."
    return (
        f"{in_use}: it cannot be moved into ward {ward.code}, which no one watches (no active nurse, station or "
        "escalation recipient is a member of it): no one would see it or be paged for its alarms. Move it to a "
        f"ward that watches it, or make the staff who will watch it members of ward {ward.code} first."
    )


def ward_lock(*, ward_pk: int) -> Ward | None:
    """Lock the ward's row to the end of the caller's transaction (PostgreSQL; SQLite's IMMEDIATE transactions are
    serial): who watches it (its members) and what of it is in use (its pumps) change one at a time. Taken after the
    pumps the caller locks (`Device`'s lock order: pumps, then wards). The ward, or None once it was deleted.

    `NO KEY UPDATE`: it waits for and holds off the other locks of the ward (a removal of its members, a silence, an
    alarm's share) but not a foreign key's check of it. A pump's row written twice in one transaction (an infusion's
    start, the bridge's batch) has its ward's key checked at commit (`FOR KEY SHARE`): under `FOR UPDATE` a ward
    deleted while an infusion started on one of its pumps deadlocked, the deletion waiting for the pump's row, the
    start for the ward's (PostgreSQL aborted one of them). A deletion now holds its pumps before its ward
    (`ward_deletion_lock`), which alone breaks that cycle; `NO KEY UPDATE` is kept all the same: a move into the ward
    then holds up no commit of another pump of the ward (its key check)."""
    return Ward.objects.select_for_update(no_key=True).filter(pk=ward_pk).first()


def ward_deletion_lock(*, ward_pks: Collection[int]) -> None:
    """For a deletion of these wards, to the end of the caller's transaction: their pumps' rows locked (pk order),
    then the wards' (`ward_lock`, pk order); refused (`ward_changed`) when a pump came into one of them in between.

    Pumps before wards, `Device`'s lock order: a move locks its pumps, then its destination
    (`pump_move_refuse_if_unwatched`), and the bridge's alarm its pump, then a share of its ward
    (`silences._ward_hold`). The ward first, a deletion waited for a pump whose move or alarm waited for the ward,
    and PostgreSQL aborted one of them (review 41, F2: `ward.devices.set(...)` against that ward's deletion).
    A move holds its destination's lock until it commits, so once the deletion holds the ward no move into it is
    under way: a pump found in it then, and not locked, came in between the two. The deletion would null its ward
    (`SET_NULL`) unchecked and untold, so it is refused, for the ward to be looked at again."""
    locked = set(Device.objects.select_for_update().filter(ward_id__in=ward_pks).order_by("pk")
                 .values_list("pk", flat=True))  # fmt: skip
    for ward_pk in sorted(ward_pks):
        ward_lock(ward_pk=ward_pk)
    arrived = Device.objects.filter(ward_id__in=ward_pks).exclude(pk__in=locked).select_related("ward")
    refusals = [f"Pump {pump.device_id} came into ward {pump.ward.code} while it was being deleted"
                for pump in arrived.order_by("ward__code", "device_id")]  # fmt: skip
    if refusals:
        raise PumpStreamError(f"{'; '.join(refusals)}: look at the ward again and retry.", code="ward_changed")


def ward_delete_blockers(*, ward: Ward) -> list[str]:
    """What keeps a ward from being deleted: each of its pumps in use (`pumps_in_use_blockers`). Deleted, the ward's
    stations would lose those pumps and no one of the ward would be paged for their alarms: they are moved to another
    ward first."""
    return pumps_in_use_blockers(devices=list(Device.objects.filter(ward=ward).order_by("device_id")))


def pumps_in_use_blockers(*, devices: list[Device]) -> list[str]:
    """Each of these pumps with an infusion on (pending, running, paused) or an active alarm, described for the
    administrator: such a pump is never left without a ward (its ward deleted or its ward field cleared), nor moved
    into a ward no one watches (`pump_move_refusal`)."""
    sessions, alarms = sessions_current_by_device(devices), alarms_active_by_device(devices)
    blockers = []
    for device in devices:
        pump = f"pump {device.device_id}" + (f" (bed {device.bed})" if device.bed else "")
        if device.pk in sessions:
            session = sessions[device.pk]
            blockers.append(f"{pump}: infusion {session.infusion_id} is {session.status}")
        if alarms.get(device.pk):
            blockers.append(f"{pump}: {len(alarms[device.pk])} active alarm(s)")
    return blockers


def ward_in_use_refusal(*, ward: Ward) -> str:
    """Why `ward` may not be deleted (`ward_in_use`): its pumps in use and their beds; "" if it may. The one wording
    of `ward_delete` and of the models' guard below it (`deletion_guards`)."""
    blockers = ward_delete_blockers(ward=ward)
    return f"Ward {ward.code} is in use: {'; '.join(blockers)}" if blockers else ""


def ward_delete(*, ward: Ward, user: Any = None) -> None:
    """Delete a ward; its pumps stay, without a ward, each shown so by a `device:status` change. Refused while one
    of its pumps has an infusion on or an active alarm (`ward_delete_blockers`).

    Each pump leaves the ward through `pump_registration_save` (its lock, its change, the audit) before the
    ward goes, so no pump's ward changes behind its screens (the foreign key would set it to null silently).
    """
    with transaction.atomic():
        # Its pumps' rows and then its own locked (`ward_deletion_lock`): a move into it that starts later waits for
        # the deletion and is then refused; one under way is waited for and refuses the deletion (`ward_changed`).
        ward_deletion_lock(ward_pks=[ward.pk])
        refusal = ward_in_use_refusal(ward=ward)
        if refusal:
            raise PumpStreamError(refusal, code="ward_in_use")
        for device in Device.objects.filter(ward=ward).order_by("pk"):  # each locked already (`ward_deletion_lock`)
            device.ward = None
            pump_registration_save(device=device, fields=["ward"], user=user)
        ward.delete()


def pump_delete_blockers(*, device: Device) -> list[str]:
    """What keeps a pump from being deleted besides its records (infusions, commands: protected by the database):
    an infusion on or an active alarm (`pumps_in_use_blockers`). Deleted, its alarms would go with it, unresolved
    and unannounced, and its screens would go on showing them."""
    return pumps_in_use_blockers(devices=[device])


def pump_in_use_refusal(*, device: Device) -> str:
    """Why `device` may not be deleted (`pump_in_use`): its infusion on, its active alarms; "" if it may. The one
    wording of `pump_delete` and of the models' guard below it (`deletion_guards`)."""
    blockers = pump_delete_blockers(device=device)
    return f"Pump {device.device_id} is in use ({'; '.join(blockers)}): it cannot be deleted" if blockers else ""


def pump_delete(*, device: Device, user: Any = None) -> None:
    """Delete a registered pump that was never used for an infusion or a command; refused (`pump_in_use`) while it
    has an infusion on or an active alarm, checked under its lock (an alarm raised meanwhile waits, then refuses).

    Its screens are told in the same transaction: a `device:removed` change (the last of its `seq`, which its device
    id keeps in `RemovedPump` for a pump registered again under it), so its watchers stop showing it and its ward's
    stations drop it, whichever process deletes it."""
    with transaction.atomic():
        stored = device_lock(device_id=device.device_id)
        refusal = pump_in_use_refusal(device=stored)
        if refusal:
            raise PumpStreamError(refusal, code="pump_in_use")
        now = timezone.now()
        by = user.get_username() if user is not None else None
        change_record(device=stored, event=events.DEVICE_REMOVED, body=payloads.removed_body(at=now, by=by))
        RemovedPump.objects.update_or_create(device_id=stored.device_id,
                                             defaults={"last_seq": stored.event_seq, "removed_at": now})  # fmt: skip
        try:
            stored.delete()
        except ProtectedError as exc:
            raise PumpStreamError(f"Pump {stored.device_id} has infusion or command records: it cannot be deleted",
                                  code="pump_in_use") from exc  # fmt: skip
    logger.info("pump deleted", extra={"device_id": stored.device_id, "seq": stored.event_seq, "by": by})
