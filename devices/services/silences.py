"""A ward's shared silence of its alarm sound (contract v1.1 `silence:ward`; rules in docs/clinical-rules.md).

IEC 60601-1-8 AUDIO PAUSED: sound only (every screen still shows the alarms), time-limited (at most
`WARD_SILENCE_MAX_S`), ended early by a user or by a new alarm that must be heard: any high alarm that
alerts (raised, re-alerted, escalated), or an alarm above the priority that was sounding when the silence
started. A silence never stops escalation. Every silence is kept with who, when, why and how it ended.
It covers only what the screen that asked had shown: a sounding alarm it did not list (`seen`) that would have sounded
through it, had it come just after the press, refuses it (`alarm_unseen`).
"""

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, Ward, WardSilence
from devices.states import ALARM_PRIORITY_RANK, AlarmPriority, AlarmState, SilenceEnd
from protocol.visible_text import text_kept

logger = logging.getLogger(__name__)

REASON_MAX = 200
SILENCE_PERMISSION = "devices.acknowledge_alarm"  # plus membership of the ward (staff: any ward)
UNSEEN_MESSAGE = "A new alarm came as you pressed: look at it, then silence again"


class AlarmSeen(NamedTuple):
    """An alarm as a screen showed it: which alarm, which of its alerts (`alerts`), at which escalation tier."""

    alarm_id: int
    alerts: int
    tier: int


def silence_seconds(requested: Any) -> float:
    """The silence's length: the default when none is asked for, else 1 s to the configured maximum."""
    if requested is None:
        return settings.PUMPSTREAM["WARD_SILENCE_DEFAULT_S"]
    if isinstance(requested, bool) or not isinstance(requested, int | float) or requested != requested:
        raise PumpStreamError("seconds must be a number", code="invalid_seconds", field="seconds")
    maximum = settings.PUMPSTREAM["WARD_SILENCE_MAX_S"]
    if not 1 <= requested <= maximum:
        raise PumpStreamError(f"A silence lasts 1 to {maximum:g} s", code="invalid_seconds", field="seconds")
    return float(requested)


def ward_silence(
    *,
    ward: Ward,
    user: Any,
    seconds: Any = None,
    reason: str = "",
    now: datetime | None = None,
    seen: Collection[AlarmSeen] | None = None,
) -> WardSilence:
    """Silence the ward's alarm sound on every screen for `seconds` (a running silence is replaced).

    `seen`: the alarms the screen that asked had shown long enough to be read; a sounding alarm it leaves out that
    would break the silence refuses it (`alarm_unseen`), nothing changed. None: not judged (no screen asked: a test,
    the shell); the `silence:ward` request always gives it.
    """
    now = now or timezone.now()
    length = silence_seconds(seconds)
    with transaction.atomic():
        Ward.objects.select_for_update().filter(pk=ward.pk).first()  # one silence at a time per ward
        if seen is not None and (unseen := unseen_alarm(ward=ward, seen=seen)) is not None:
            logger.info("ward silence refused: an alarm unseen", extra={"ward": ward.code, "alarm_id": unseen.pk})
            raise PumpStreamError(UNSEEN_MESSAGE, code="alarm_unseen")
        _close_open(ward=ward, now=now, reason=SilenceEnd.RENEWED, user=user)
        silence = WardSilence.objects.create(
            ward=ward, started_by=user, started_at=now, until=now + timedelta(seconds=length),
            reason=text_kept(reason)[:REASON_MAX], priority=_sounding_priority(ward=ward),
        )  # fmt: skip
    logger.info("ward silenced", extra={"ward": ward.code, "seconds": length, "user": user.get_username()})
    return silence


def ward_silence_end(*, ward: Ward, user: Any, now: datetime | None = None) -> WardSilence | None:
    """A user ends the ward's silence early; the silence that ended, or None when none was on."""
    now = now or timezone.now()
    with transaction.atomic():
        Ward.objects.select_for_update().filter(pk=ward.pk).first()
        return _close_open(ward=ward, now=now, reason=SilenceEnd.ENDED, user=user)


def ward_silence_break(*, device: Device, alarm: Alarm, now: datetime | None = None,
                       escalated: bool = False) -> WardSilence | None:  # fmt: skip
    """An alarm alerted: end its ward's silence if the alarm must be heard through it (inside the caller's atomic).

    An escalation always is, whatever its priority: a silence never stops an unanswered alarm's escalation.
    """
    ward_id = device.ward_id
    if ward_id is None:
        return None
    now = now or timezone.now()
    _ward_hold(ward_id)
    silence = WardSilence.objects.filter(ward_id=ward_id, ended_at__isnull=True, until__gt=now).first()
    if silence is None or not (escalated or breaks_silence(priority=alarm.priority, silenced=silence.priority)):
        return None
    silence.ended_at, silence.end_reason, silence.broken_by = now, SilenceEnd.BROKEN, alarm
    silence.save(update_fields=["ended_at", "end_reason", "broken_by"])
    logger.info("ward silence broken by an alarm", extra={"ward_id": ward_id, "alarm_id": alarm.pk})
    return silence


def ward_silence_break_on_arrival(*, device: Device, now: datetime | None = None) -> WardSilence | None:
    """A pump joined its ward (moved in the admin) with alarms sounding: end the ward's silence if the highest of its
    active, unacknowledged alarms must be heard through it (inside the caller's atomic, under the pump's lock).

    Those alarms alerted elsewhere: the ward never heard them, and its silence's priority never counted them, so for
    this ward they alert now. An acknowledged alarm does not sound, so it breaks nothing."""
    sounding = Alarm.objects.filter(device=device, state=AlarmState.ACTIVE, acknowledged_at__isnull=True)
    loudest = max(sounding.order_by("-last_raised_at", "-pk"), key=_rank, default=None)
    if loudest is None:
        return None
    return ward_silence_break(device=device, alarm=loudest, now=now)


def unseen_alarm(*, ward: Ward, seen: Collection[AlarmSeen]) -> Alarm | None:
    """A sounding alarm of the ward the screen did not show (`seen`, at this alert and tier) that a silence must not
    cover: judged as if it came just after the press, by the rule that breaks a silence (`breaks_silence` against the
    highest priority shown; any escalation). None when the silence covers only what was seen."""
    shown = set(seen)
    sounding = list(_sounding(ward).only("alerts", "escalation_level", "priority").order_by("pk"))
    seen_ids = {alarm.pk for alarm in sounding if AlarmSeen(alarm.pk, alarm.alerts, alarm.escalation_level) in shown}
    heard = max((alarm.priority for alarm in sounding if alarm.pk in seen_ids), key=_priority_rank, default="")
    for alarm in sounding:
        unseen = alarm.pk not in seen_ids
        if unseen and (alarm.escalation_level or breaks_silence(priority=alarm.priority, silenced=heard)):
            return alarm
    return None


def _rank(alarm: Alarm) -> int:
    return _priority_rank(alarm.priority)


def _ward_hold(ward_id: int) -> None:
    """Share the ward's row lock until the caller commits (PostgreSQL; SQLite's IMMEDIATE transactions are serial).

    A silence is started or ended under the ward's exclusive lock (`ward_silence`), so an alarm's break waits for a
    renewal in flight and then reads the silence it made, instead of ending the one it replaced while the new one
    (its priority read without this uncommitted alarm) silences the alarm unheard. Shared: the alarms of one ward
    (several bridges, several wards in a batch) never wait for each other, nor deadlock.
    """
    connection = transaction.get_connection()
    if not connection.features.has_select_for_update:
        return
    table, column = connection.ops.quote_name(Ward._meta.db_table), connection.ops.quote_name(Ward._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR SHARE", [ward_id])  # noqa: S608 - names only


def breaks_silence(*, priority: str, silenced: str) -> bool:
    """Whether an alarm of `priority` sounds through a silence started while `silenced` was sounding."""
    if priority == AlarmPriority.HIGH:
        return True
    return ALARM_PRIORITY_RANK.get(priority, 0) > ALARM_PRIORITY_RANK.get(silenced, 0)


def _close_open(*, ward: Ward, now: datetime, reason: str, user: Any) -> WardSilence | None:
    """Close the ward's open silence: ended now if it is still on, else marked as having run out."""
    silence = WardSilence.objects.filter(ward=ward, ended_at__isnull=True).first()
    if silence is None:
        return None
    if silence.is_active(now):
        silence.ended_at, silence.end_reason, silence.ended_by = now, reason, user
    else:
        silence.ended_at = silence.until
    silence.save(update_fields=["ended_at", "end_reason", "ended_by"])
    return silence if silence.end_reason else None


def _sounding(ward: Ward):
    """The ward's active, unacknowledged alarms: what a silence would cover."""
    return Alarm.objects.filter(device__ward=ward, state=AlarmState.ACTIVE, acknowledged_at__isnull=True)


def _priority_rank(priority: str) -> int:
    return ALARM_PRIORITY_RANK.get(priority, 0)


def _sounding_priority(*, ward: Ward) -> str:
    """The highest priority of the ward's active, unacknowledged alarms ("" when none sounds)."""
    priorities = set(_sounding(ward).values_list("priority", flat=True))
    return max(priorities, key=_priority_rank, default="")
