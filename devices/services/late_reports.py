"""Late reports: a pump's live message numbered, by its own `seq`, below one already applied under the same `bootId`.

`seq` increases through a boot (the contract), so such a message was overtaken on its way: a QoS 1 publish whose
first send was lost, resent by the pump's MQTT stack (esp-mqtt retransmits its outbox after 1 s while newer messages
go out at once), which the broker hands over without DUP. Applied as news it rewinds the pump's state: an old
`occlusion_cleared` clears the occlusion the pump reported since, an old `running` progress shows a paused infusion
running (review 44, F1 and F2). A late message is recorded in the pump's log (`pump.report_late`) and counted by the
bridge; it moves no session, clears no alarm, changes neither the pump's state nor its presence. An alarm it raises
is still raised, or counted on the active one ("when in doubt, alarm": a false alarm a nurse resolves is the lesser
harm than an alarm the pump sent and nobody saw). A late clearing clears what only messages of its `bootId` numbered
below it raised (`alarms_raised_before`, review 47 M4: occlusion 3, its clearing 4 resent after progress 5), never an
alarm raised or counted again after it (review 44, F1: occlusion 5 after the clearing 4).

The mark (`Device.seq_applied`) is the `seq` of the last message applied in order under `Device.boot_id`, set with
the pump's row (no statement of its own). It is never read for: a retained copy (state, not news: its own rules), a
message without `seq` or `bootId` (the original firmware), a Last Will (`offline`, written when the pump connected,
its `seq` as old as that connection), a message of another `bootId` (a new one is a restart and starts the mark
anew). A message behind it by more than `SEQ_LATE_WINDOW` is a new numbering, not a late one (a 16-bit `seq` that
wrapped, a pump reusing its `bootId` whose run before went further than that): applied, the mark set to it. One
equal to it is not late either (a pump that numbers its ticks: a progress and a status under one `seq`), nor one
whose `bootId`+`seq` a message of the same kind used before (its receipt, `MessageReceipt.kind`): a pump reusing its
`bootId` numbers its new run's messages under the keys of the run before. A message of another kind under the key
exempts nothing: a pump that numbers its ticks sends a progress and a status, or a progress and an alarm, under one
`seq`, and the one of the pair whose first send was lost comes late, the first of its kind under a used key (review
45, F1: status 4 `running` resent after progress 4 and status 5 `paused` was applied, the paused infusion shown
"Running"). A receipt from before kinds were kept (kind 0, migration 0040) exempts nothing either.

A pump that reuses its `bootId` after a reboot numbers from 0 again: its first messages are below the run before's
mark until a status tells the reboot (its `uptime` went back, `restarts.py`), which starts the mark at that status's
`seq`. Those under a key the run before used for the same kind are applied; the others (a key the run before used for
another kind, or never used) are late. The late messages other than alarms the pump sent now (no DUP, not retained,
not claimed again) are held as copies are (`devices/services/copies.py`), and claimed again after a status tells a
reboot: those received since the boot it tells are the new run's, applied then, unless a message of their kind and
run numbered above them was applied before (`report_overtaken_in_run`, review 47 M1: then late, they would rewind it).
A late alarm is raised all the same; a late clearing and late routine progress are not held (a clearing claimed again
could clear what the new run raised since; the new run's next progress says where it is). A pump reusing its
`bootId` that tells no reboot (no `uptime`) has those late ones never applied: `docs/protocol.md`, "Order within a
boot".
"""

from datetime import datetime

from django.db.models import Q

from devices.models import Alarm, Device, DeviceEvent
from devices.services.alarm_keys import alarm_is_clearing, device_alarm_key
from devices.services.changes import event_record
from devices.services.records import message_key_used_before, message_keys_received
from protocol import topics
from protocol.schemas import PRESENCE_STATUSES, DevicePayload

REPORT_LATE_EVENT = "pump.report_late"
# How far below the mark a message is still late: a pump's outbox holds seconds to minutes of messages (esp-mqtt
# drops what it could not send in 30 s by default), a few per second; half a 16-bit `seq`'s range beyond that is a
# wrap or a new numbering.
SEQ_LATE_WINDOW = 32_768


def report_seq_late(*, device: Device, kind: str, report: DevicePayload, retained: bool, received_at: datetime) -> bool:
    """Whether a message of `kind` (the topic's) is late: live, of the pump's current `bootId`, numbered below the last
    `seq` applied under it by no more than `SEQ_LATE_WINDOW`, under a key no message of its kind used before. A Last
    Will never is (its `seq`, if any, is its connection's). Only a message below the mark costs a statement
    (`records.message_key_used_before`)."""
    mark, seq = device.seq_applied, report.seq
    if retained or mark is None or seq is None or not report.bootId or report.bootId[:64] != device.boot_id:
        return False
    if not 0 < mark - seq <= SEQ_LATE_WINDOW or getattr(report, "status", None) == "offline":
        return False
    return not message_key_used_before(device_pk=device.pk, boot_id=device.boot_id, device_seq=seq, kind=kind,
                                       before=received_at)  # fmt: skip


def report_overtaken_in_run(
    *, device: Device, kind: str, report: DevicePayload, received_at: datetime, held_at: datetime
) -> int | None:
    """For a message held and claimed again after the status that told its pump's reboot (`pumps.pump_report_apply`'s
    `held_at`: the new run's, first received then, before that status): the `seq` of the newest message of its kind
    and run applied before it and numbered above it, else None. Applied now, it would rewind what that one set
    (review 47, M1: the held status 2 `testing` 77 % applied after the new run's status 3 `issue` 12 %), so it is late.

    The new run's messages: of its `bootId`, received since the boot that status tells (`Device.booted_at`, set by
    it), and either since the held one (it is the new run's: so is what came after it; the telling status too, and
    what was claimed again before it) or under a key a message of its kind used before (a reused key: the new run's,
    under the run before's). The run before's own tail may be received within the uptime's reach (a
    bridge's backlog received at once): it is never taken for the new run's. A message recorded as late set nothing,
    nor did a presence status (it says connected or gone, and moves no mark: `seq_mark_set`); an alarm is never
    overtaken (raised all the same). Only for a message claimed again: three reads at most."""
    booted_at = device.booted_at
    if kind == topics.ERROR or report.seq is None or not report.bootId or booted_at is None:
        return None
    received = message_keys_received(device_pk=device.pk, boot_id=report.bootId, kind=kind, above=report.seq,
                                     since=booted_at, until=received_at)  # fmt: skip
    new_run = {(seq, at) for seq, at, reused in received if reused or at >= held_at}
    if not new_run:
        return None
    set_nothing = Q(kind=REPORT_LATE_EVENT, payload__kind=kind)
    if kind == topics.STATUS:
        set_nothing |= Q(kind=f"mqtt.{kind}", payload__status__in=PRESENCE_STATUSES)
    events = DeviceEvent.objects.filter(set_nothing, device=device, device_seq__gt=report.seq,
                                        received_at__gte=booted_at, received_at__lte=received_at)  # fmt: skip
    applied = new_run - set(events.values_list("device_seq", "received_at"))
    return max((seq for seq, _ in applied), default=None)


def alarms_raised_before(*, device: Device, alarms: list[Alarm], report: DevicePayload) -> list[Alarm]:
    """Of the pump's active alarms a late clearing names, those it clears: each raised, and counted again since, only
    by messages of the clearing's `bootId` numbered below it (review 47, M4: occlusion 3 cleared at tick 4, the
    clearing's first send lost and resent after progress 5; it cleared nothing, the occlusion the pump cleared stayed a
    sounding high alarm). An alarm raised or counted again by a message numbered above it (review 44 F1: occlusion 5
    after the clearing 4), of another `bootId`, without `seq`, or by none the pump's log shows, is newer than the
    clearing or not known to be older: not cleared. Its raisers are the pump's `error` messages logged since it was
    raised under its key (a flood's counts held unsent too); one read, only for a late clearing naming an active
    alarm."""
    if report.seq is None or not report.bootId or not alarms:
        return []
    boot_id = report.bootId[:64]
    errors = DeviceEvent.objects.filter(device=device, kind=f"mqtt.{topics.ERROR}",
                                        received_at__gte=min(alarm.raised_at for alarm in alarms))  # fmt: skip
    older: dict[int, bool] = {}  # per alarm: raised by a message numbered below the clearing, by none above it
    for at, type_sent, error_code, raiser_boot, seq in errors.values_list(
        "received_at", "payload__type", "payload__errorCode", "boot_id", "device_seq"
    ):
        if not isinstance(type_sent, str) or alarm_is_clearing(type_sent):
            continue
        key, code = device_alarm_key(type_sent), str(error_code if error_code is not None else "")[:64]
        for alarm in alarms:
            if (alarm.type, alarm.error_code) == (key, code) and at >= alarm.raised_at:
                below = raiser_boot == boot_id and seq is not None and seq < report.seq
                older[alarm.pk] = older.get(alarm.pk, True) and below
    return [alarm for alarm in alarms if older.get(alarm.pk)]


def seq_mark_set(*, device: Device, report: DevicePayload, retained: bool) -> bool:
    """Move the pump's mark to a message judged in order; True when it moved. Only in memory: the caller stores it
    with the pump's row.

    A presence status (`online`, `offline`) moves no mark: it sets nothing a late message could rewind but presence,
    and a pump publishes its `online` on reconnecting BEFORE the QoS 1 messages it queued while its link was down
    (paho's and esp-mqtt's outbox): a pause at the bedside during a Wi-Fi drop arrives numbered below that `online`,
    and is news (review 21's case). A message of another `bootId` than the pump's starts the mark anew (at it, or
    none for a presence status): it is a restart (`restarts.pump_restart_check` then takes that `bootId`), or the
    pump's first."""
    if retained or report.seq is None or not report.bootId:
        return False
    if report.bootId[:64] != device.boot_id:
        return seq_mark_restart(device=device, report=report)
    if getattr(report, "status", None) in PRESENCE_STATUSES or device.seq_applied == report.seq:
        return False
    device.seq_applied = report.seq
    return True


def seq_mark_restart(*, device: Device, report: DevicePayload) -> bool:
    """A restart told by this message (a new `bootId`, or a reboot under the same one, `restarts.py`): the run before's
    mark is retired, the new run's starts at it (none for a presence status, nor for a message without `seq`); True
    when it changed. Only in memory, as `seq_mark_set`."""
    presence = getattr(report, "status", None) in PRESENCE_STATUSES
    mark = None if presence or not report.bootId else report.seq
    if device.seq_applied == mark:
        return False
    device.seq_applied = mark
    return True


def report_late_record(
    *, device: Device, kind: str, report: DevicePayload, raised: bool, session_pk: int | None, now: datetime,
    cleared: bool = False, after: int | None = None,
) -> None:  # fmt: skip
    """Write a late message in the pump's log: what it was, its `seq` and the one it came after (`after`, else the
    mark), and whether it raised an alarm or cleared one raised before it (the only things a late message may still
    do)."""
    event_record(
        device=device, kind=REPORT_LATE_EVENT, session_pk=session_pk, received_at=now, device_seq=report.seq,
        boot_id=report.bootId or "",
        payload={"kind": kind, "seq": report.seq, "seqApplied": device.seq_applied if after is None else after,
                 "bootId": report.bootId, "raised": raised, "cleared": cleared,
                 "report": report.model_dump(mode="json", exclude_none=True)},
    )  # fmt: skip
