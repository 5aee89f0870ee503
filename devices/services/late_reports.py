"""Late reports: a pump's live message numbered, by its own `seq`, below one already applied under the same `bootId`.

`seq` increases through a boot (the contract), so such a message was overtaken on its way: a QoS 1 publish whose
first send was lost, resent by the pump's MQTT stack (esp-mqtt retransmits its outbox after 1 s while newer messages
go out at once), which the broker hands over without DUP. Applied as news it rewinds the pump's state: an old
`occlusion_cleared` clears the occlusion the pump reported since, an old `running` progress shows a paused infusion
running (review 44, F1 and F2). A late message is recorded in the pump's log (`pump.report_late`) and counted by the
bridge; it moves no session, clears no alarm, changes neither the pump's state nor its presence. An alarm it raises
is still raised, or counted on the active one ("when in doubt, alarm": a false alarm a nurse resolves is the lesser
harm than an alarm the pump sent and nobody saw).

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
reboot: those received since the boot it tells are the new run's, applied then. A late alarm is raised all the same; a
late clearing and late routine progress are not held (a clearing claimed again could clear what the new run raised
since; the new run's next progress says where it is). A pump reusing its `bootId` that tells no reboot (no `uptime`)
has those late ones never applied: `docs/protocol.md`, "Order within a boot".
"""

from datetime import datetime

from devices.models import Device
from devices.services.changes import event_record
from devices.services.records import message_key_used_before
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
    *, device: Device, kind: str, report: DevicePayload, raised: bool, session_pk: int | None, now: datetime
) -> None:
    """Write a late message in the pump's log: what it was, its `seq` and the mark, and whether it raised an alarm
    (the only thing a late message may still do)."""
    event_record(
        device=device, kind=REPORT_LATE_EVENT, session_pk=session_pk, received_at=now, device_seq=report.seq,
        boot_id=report.bootId or "",
        payload={"kind": kind, "seq": report.seq, "seqApplied": device.seq_applied, "bootId": report.bootId,
                 "raised": raised, "report": report.model_dump(mode="json", exclude_none=True)},
    )  # fmt: skip
