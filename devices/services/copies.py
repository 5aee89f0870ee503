"""Alarms skipped as copies, held until a status may tell they were a rebooted pump's own (review 25, finding 3).

A pump that reuses its `bootId` (an unseeded `random()`) starts `seq` again at each boot; its first messages may be
byte for byte those of the run before under the same `seq` (a power-on self-test occlusion), and are then skipped as
copies (`records.message_receipts_claim`). The status that tells the reboot (its `uptime` went back) retires the run
before's receipts, but an alarm sent BEFORE that status was judged already. Such an alarm, sent now (no MQTT DUP, not
retained), is held here; when a status tells a reboot, those received since the boot it tells are claimed again.

Bounded, so a pump repeating copies cannot grow the table: held `HELD_COPIES_KEEP_S` at most, the newest
`HELD_COPIES_PER_PUMP` of a pump, and `HELD_COPIES_IN_ALL` rows in all (by id: rows only grow in id, so those within
that many ids of the newest are at most that many).
"""

from datetime import datetime, timedelta

from django.db.models import Q

from devices.models import HeldCopy

HELD_COPIES_KEEP_S = 60.0  # a rebooting pump's status follows its first alarm within milliseconds, seconds at worst
HELD_COPIES_PER_PUMP = 16  # a power-on self-test raises a few alarms at most
HELD_COPIES_IN_ALL = 2_000  # at MAX_PAYLOAD_BYTES (16 KiB) each: 32 MiB at most


def copy_hold(*, device_pk: int, boot_id: str, topic: str, payload: bytes, received_at: datetime) -> None:
    """Hold an alarm skipped as a copy though the pump sent it now; drop what is past the bounds (three statements,
    only for such a copy: a pump's own retransmission of a late-acknowledged QoS 1 alarm, or a rebooted pump's)."""
    held = HeldCopy.objects.create(device_id=device_pk, boot_id=boot_id[:64], topic=topic[:200], payload=payload,
                                   received_at=received_at)  # fmt: skip
    too_old = received_at - timedelta(seconds=HELD_COPIES_KEEP_S)
    stale = Q(received_at__lt=too_old) | Q(pk__lte=held.pk - HELD_COPIES_IN_ALL)
    HeldCopy.objects.filter(stale).delete()
    newest_first = HeldCopy.objects.filter(device_id=device_pk).order_by("-id").values_list("id", flat=True)
    overflow = list(newest_first[HELD_COPIES_PER_PUMP:])
    if overflow:
        HeldCopy.objects.filter(id__in=overflow).delete()


def copies_held_take(
    *, device_pk: int, boot_id: str, booted_at: datetime, now: datetime
) -> list[tuple[str, bytes, datetime]]:
    """The pump's messages held under `boot_id` and received since it booted (`booted_at`, as its status tells it) and
    within `HELD_COPIES_KEEP_S`, oldest first, as (topic, payload, received at); every copy it held under that
    `bootId` is let go: those received before the boot were the run before's (a retransmission), copies indeed."""
    held = HeldCopy.objects.filter(device_id=device_pk, boot_id=boot_id[:64])
    since = max(booted_at, now - timedelta(seconds=HELD_COPIES_KEEP_S))
    taken = list(held.filter(received_at__gte=since, received_at__lte=now).order_by("received_at", "id")
                 .values_list("topic", "payload", "received_at"))  # fmt: skip
    held.delete()
    return [(topic, bytes(payload), received_at) for topic, payload, received_at in taken]
