"""Which messages skipped as copies are held, and which are claimed again when a status tells a reboot.

A message whose receipt is already stored is skipped as a copy (`ingest._seen_before`). Under a `bootId` the pump
reuses after a reboot, the new run's first messages can be byte for byte the run before's under the same `seq`, and
the status that tells the reboot (its `uptime` went back) retires the run before's receipts only from then on: an
alarm sent just before it, in the same batch or the one before, was skipped (review 25, finding 3: a power-on
self-test occlusion; nothing alarmed). So an alarm skipped as a copy though the pump sent it now (no MQTT DUP, not
retained: no redelivery, no replay) is held (`devices/services/copies.py`), and when a status tells the reboot, the
alarms held since the boot it tells (its receive time less its `uptime`) are claimed again, oldest first: the run
before's receipts retired, they are the new run's and are raised. A retained or DUP copy is a copy by the protocol
itself and is never held; one held before the boot was the run before's own retransmission and is let go.

Clearings are never held: one claimed again late could clear an alarm the new run raised since (silent); an alarm
raised late is the lesser harm (`docs/protocol.md`, "The known limit").

A message that came late by its `seq` (`devices/services/late_reports.py`) may be such a new run's too: numbered from 0
again, below the run before's mark, under a key the run before never used for its kind (a status where it sent a
progress), until the status telling the reboot starts the mark anew. One other than an alarm (an alarm is raised
late all the same) that the pump sent now is held the same way, and claimed again, applied in order, when a status
tells the reboot, unless a message of its kind and run numbered above it was applied before
(`late_reports.report_overtaken_in_run`: then late, review 47 M1); without one it is never applied, as a late
message."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from devices.services.alarm_keys import alarm_is_clearing
from devices.services.copies import copies_held_take, copy_hold
from devices.services.restarts import boot_moment
from protocol import topics

if TYPE_CHECKING:
    from devices.services.records import ReceiptKey
    from realtime.bridge.ingest import CheckedMessage, InboundMessage


def copy_held_if_sent_now(message: InboundMessage, checked: CheckedMessage, receipt: ReceiptKey) -> None:
    """Hold an alarm just skipped as a copy when the pump sent it now and it raises (not a clearing); not one claimed
    again already (`InboundMessage.reclaimed`)."""
    if receipt.replay or message.reclaimed or checked.kind != topics.ERROR:
        return
    if alarm_is_clearing(checked.report.type):
        return
    copy_hold(device_pk=receipt.device_pk, boot_id=receipt.boot_id, topic=message.topic, payload=message.payload,
              received_at=message.received_at)  # fmt: skip


def late_held_if_sent_now(message: InboundMessage, checked: CheckedMessage, device_pk: int) -> None:
    """Hold a message just recorded as late (`late_reports.py`) when the pump sent it now and it is not an alarm
    (raised late all the same), nor claimed again already: a rebooted pump's under its reused `bootId` until a status
    tells the reboot. Routine progress never comes here (the bulk path): a rebooted pump's newer progress supersedes
    it."""
    if message.retain or message.redelivered or message.reclaimed or checked.kind == topics.ERROR:
        return
    if not checked.report.bootId:
        return
    copy_hold(device_pk=device_pk, boot_id=checked.report.bootId, topic=message.topic, payload=message.payload,
              received_at=message.received_at)  # fmt: skip


def copies_sent_since_boot(
    status: InboundMessage, checked: CheckedMessage, device_pk: int
) -> list[tuple[str, bytes, datetime]]:
    """For a status that told its pump restarted: the messages of its `bootId` held since the boot its `uptime` tells,
    oldest first, as (topic, payload, first received at); none for another report, a Last Will or a status without a
    believable uptime (`restarts.boot_moment`)."""
    report = checked.report
    if checked.kind != topics.STATUS or report.status == "offline" or not report.bootId or status.retain:
        return []
    booted_at = boot_moment(status.received_at, report.uptime)
    if booted_at is None or report.uptime == 0:
        return []
    return copies_held_take(device_pk=device_pk, boot_id=report.bootId, booted_at=booted_at, now=status.received_at)
