"""Selectors read: who may see which pumps, tokens, the bridge's liveness."""

from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from devices.alarm_order import alarms_most_urgent_first
from devices.models import (
    Alarm,
    BridgeStatus,
    Command,
    Device,
    DeviceEvent,
    InfusionSession,
    ProgressSample,
    ServiceAccount,
    Ward,
)
from devices.models.accounts import hash_token
from devices.states import (
    ACTIVE_SESSION_STATUSES,
    AlarmState,
    CommandKind,
)
from protocol.topics import DEVICE_ID_RE

BRIDGES_READ = 100  # the fresh heartbeats read to pick the bridge that speaks for monitoring (a few run)
# A bridge stamps its heartbeat with its own clock. One stamped further ahead of this server's clock than this is
# clock skew, no proof of life: it would read fresh for as long as it is ahead (a host booted an hour ahead whose
# bridge died before NTP put the clock back: review 34, finding 8). Hosts kept by NTP agree within milliseconds.
HEARTBEAT_AHEAD_TOLERANCE_S = 2.0


def devices_visible_to(principal) -> QuerySet[Device]:
    """Pumps a user or service account may see: its wards' pumps (staff and all-ward accounts: all)."""
    devices = Device.objects.select_related("ward")
    if isinstance(principal, ServiceAccount):
        return devices if principal.all_wards else devices.filter(ward__in=principal.wards.all())
    if not getattr(principal, "is_authenticated", False):
        return devices.none()
    if principal.is_staff:
        return devices
    return devices.filter(ward__members=principal)


def device_visible_to(principal, device_id: str) -> Device | None:
    """The pump if it exists and `principal` may see it, else None (also for any string no pump's id can be: a
    URL's `%00` reached PostgreSQL, which refuses NUL in text, as a 500)."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        return None
    return devices_visible_to(principal).filter(device_id=device_id).first()


def device_exists(device_id: str) -> bool:
    """Whether a pump with this id is registered."""
    return bool(DEVICE_ID_RE.fullmatch(device_id)) and Device.objects.filter(device_id=device_id).exists()


def ward_exists(code: str) -> bool:
    """Whether a ward with this code exists."""
    return Ward.objects.filter(code=code).exists()


def service_account_for_token(token: str) -> ServiceAccount | None:
    """The active service account holding `token`, or None (revoked tokens are refused)."""
    if not isinstance(token, str) or not token:
        return None
    return ServiceAccount.objects.filter(token_hash=hash_token(token), revoked_at__isnull=True).first()


def latest_bridge() -> BridgeStatus | None:
    """The bridge that reported last (one runs in production), but first a live one that lost the broker, then a live
    one holding it.

    So that no bridge that is still reporting can hide another's lost broker behind a fresher heartbeat; yet a bridge
    stopped on purpose (its last heartbeat says `stopped`, `worker._say_stopped`), starting, or holding no slot
    (`standby`) beside others that hold the broker (several bridges sharing the pumps: they hold its slots)
    degrades nothing. Alone, it is the last to report, and monitoring is degraded.
    """
    reporting = BridgeStatus.objects.exclude(heartbeat_at=None).order_by("-heartbeat_at")
    fresh = list(heartbeats_fresh(reporting, now=timezone.now())[:BRIDGES_READ])
    lost = [status for status in fresh if not status.broker_connected and not _not_holding_on_purpose(status)]
    holding = [status for status in fresh if status.broker_connected]
    return (lost or holding or [reporting.first()])[0]


def _not_holding_on_purpose(status: BridgeStatus) -> bool:
    """A bridge that holds no broker session by design: stopped on purpose, starting, or (several bridges sharing
    the pumps) holding no slot yet or none at all (`standby`): it has lost nothing another must not hide."""
    stats = status.stats or {}
    return bool(stats.get("stopped") or stats.get("starting") or stats.get("standby"))


def heartbeat_fresh(heartbeat_at: datetime | None, *, now: datetime) -> bool:
    """Whether a bridge heartbeat stamped `heartbeat_at` shows the bridge alive at `now` (this server's clock): no
    older than BRIDGE_STALE_AFTER_S, and no further ahead than HEARTBEAT_AHEAD_TOLERANCE_S. Every reader of a
    heartbeat judges it here or by `heartbeats_fresh`, which says the same in a query."""
    if heartbeat_at is None:
        return False
    age_s = (now - heartbeat_at).total_seconds()
    return -HEARTBEAT_AHEAD_TOLERANCE_S <= age_s <= settings.PUMPSTREAM["BRIDGE_STALE_AFTER_S"]


def heartbeats_fresh(statuses: QuerySet[BridgeStatus], *, now: datetime) -> QuerySet[BridgeStatus]:
    """Those of `statuses` whose heartbeat is fresh at `now`, as `heartbeat_fresh` judges one."""
    stale_after = timedelta(seconds=settings.PUMPSTREAM["BRIDGE_STALE_AFTER_S"])
    ahead = timedelta(seconds=HEARTBEAT_AHEAD_TOLERANCE_S)
    return statuses.filter(heartbeat_at__gte=now - stale_after, heartbeat_at__lte=now + ahead)


def heartbeat_ahead_s(heartbeat_at: datetime | None, *, now: datetime) -> float | None:
    """How far a heartbeat is stamped ahead of `now`, past the tolerance (the bridge's clock runs ahead of this
    server's, or ran ahead when it last wrote), else None."""
    if heartbeat_at is None:
        return None
    ahead_s = (heartbeat_at - now).total_seconds()
    return ahead_s if ahead_s > HEARTBEAT_AHEAD_TOLERANCE_S else None


def bridge_status(status: BridgeStatus | None = None) -> dict:
    """Whether monitoring itself is alive: the bridge's heartbeat is fresh and it holds the broker (that of `status`,
    by default `latest_bridge()`'s). `clockAheadS`: its heartbeat is stamped that far ahead of this server's clock
    (not alive: clock skew, said so that the operations page can name it)."""
    status = status or latest_bridge()
    now = timezone.now()
    heartbeat_at = status.heartbeat_at if status else None
    alive = heartbeat_fresh(heartbeat_at, now=now)
    return {
        "alive": alive,
        "brokerConnected": bool(alive and status.broker_connected),
        "heartbeatAt": heartbeat_at.isoformat() if heartbeat_at else None,
        "brokerLostSince": status.broker_lost_since.isoformat() if status and status.broker_lost_since else None,
        "clockAheadS": heartbeat_ahead_s(heartbeat_at, now=now),
        "cause": _not_holding_because(status) if alive else None,
    }


def _not_holding_because(status: BridgeStatus) -> str | None:
    """Why a live bridge says it does not hold the broker, when it knows (review 34): `schema_behind` (started before
    `migrate`, it consumes nothing), `session_taken_over` (another client takes its session: two bridges with one
    MQTT_CLIENT_ID?)."""
    stats = status.stats or {}
    if stats.get("schemaBehind"):
        return "schema_behind"
    return "session_taken_over" if stats.get("sessionContested") else None


def wards_visible_to(user) -> QuerySet[Ward]:
    """The wards whose pumps a user may see (staff: every ward)."""
    if not getattr(user, "is_authenticated", False):
        return Ward.objects.none()
    return Ward.objects.all() if user.is_staff else Ward.objects.filter(members=user)


def session_current(device: Device) -> InfusionSession | None:
    """The pump's active session, else its most recent one given in its present ward (what the monitor shows): an
    infusion another ward gave on it before it moved is that ward's patient's record, never shown here. Most recent
    is the one placed last (`pk`), never the latest `created_at`: an ended order placed while the clock ran ahead keeps
    that moment once it is put right (review 50: the monitor showed it over the order placed after it)."""
    sessions = InfusionSession.objects.filter(device=device).select_related("started_by")
    active = sessions.filter(status__in=ACTIVE_SESSION_STATUSES).first()
    return active or sessions.filter(ward_id=device.ward_id).order_by("-pk").first()


def sessions_current_by_device(devices: list[Device]) -> dict[int, InfusionSession]:
    """The active session of each pump that has one (one query)."""
    active = InfusionSession.objects.filter(device__in=devices, status__in=ACTIVE_SESSION_STATUSES)
    return {session.device_id: session for session in active}


def devices_for_ward_feed(*, device_ids: list[str] | None = None, codes: set[str] | None = None) -> list[Device]:
    """These pumps (or every pump of these wards, or every pump), with their wards."""
    devices = Device.objects.select_related("ward")
    if device_ids is not None:
        devices = devices.filter(device_id__in=device_ids)
    if codes is not None:
        devices = devices.filter(ward__code__in=codes)
    return list(devices)


def escalation_recipients(group: str, ward_code: str) -> set[int]:
    """Ids of the active users in `group` who belong to the ward now (an escalation tier's recipients)."""
    users = get_user_model().objects.filter(groups__name=group, wards__code=ward_code, is_active=True)
    return set(users.values_list("pk", flat=True))


def alarms_active(device: Device) -> list[Alarm]:
    """The pump's active alarms, the most urgent first (`devices/alarm_order.py`)."""
    alarms = Alarm.objects.filter(device=device, state=AlarmState.ACTIVE).select_related(
        "acknowledged_by", "resolved_by", "session"
    )
    return alarms_most_urgent_first(alarms)


def alarms_active_by_device(devices: list[Device]) -> dict[int, list[Alarm]]:
    """Each pump's active alarms, the most urgent first (one query): the card shows the first, the station lists
    them all (`devices/alarm_order.py`)."""
    active: dict[int, list[Alarm]] = {}
    for alarm in Alarm.objects.filter(device__in=devices, state=AlarmState.ACTIVE):
        active.setdefault(alarm.device_id, []).append(alarm)
    return {device_pk: alarms_most_urgent_first(alarms) for device_pk, alarms in active.items()}


def alarm_visible_to(user, alarm_id: int) -> Alarm | None:
    """The alarm if it exists on a pump `user` may see, and is active (the pump's present, whoever's infusion it
    sounded for) or a record of its present ward (`of_present_ward`), else None; staff: any alarm."""
    alarms = Alarm.objects.filter(pk=alarm_id, device__in=devices_visible_to(user))
    if not getattr(user, "is_staff", False):
        alarms = alarms.filter(Q(state=AlarmState.ACTIVE) | of_present_ward(F("device__ward_id")))
    return alarms.first()


def of_present_ward(ward_id) -> Q:
    """Rows with a `session` (events, commands, alarms) about no infusion, about the one on the pump, or about one given
    in the ward `ward_id` (its pk, or an expression of it): what a pump's screens in that ward may show. Those of an
    infusion the ward it left gave on it are that ward's patient's record."""
    active = Q(session__status__in=ACTIVE_SESSION_STATUSES)
    return Q(session__isnull=True) | active | Q(session__ward_id=ward_id)


def sessions_visible_to(user) -> QuerySet[InfusionSession]:
    """The infusions `user` may read: each on a pump (pending, running, paused) by its pump's ward now, each ended by
    the ward it was given in (`InfusionSession.ward`), wherever its pump went since; staff: every one."""
    sessions = InfusionSession.objects.select_related("device")
    if not getattr(user, "is_authenticated", False):
        return sessions.none()
    if user.is_staff:
        return sessions
    on_pump = Q(status__in=ACTIVE_SESSION_STATUSES, device__in=devices_visible_to(user))
    ended = Q(ward__in=wards_visible_to(user)) & ~Q(status__in=ACTIVE_SESSION_STATUSES)
    return sessions.filter(on_pump | ended)


def session_visible_to(user, infusion_id: str) -> InfusionSession | None:
    """The infusion session if it exists and `user` may read it (`sessions_visible_to`), else None (also for an id
    with NUL, which no stored id has and PostgreSQL refuses in text: a URL's `%00` was a 500)."""
    if "\x00" in infusion_id:
        return None
    return sessions_visible_to(user).filter(infusion_id=infusion_id).first()


def session_placed_with_key(user, device: Device, key: str) -> InfusionSession | None:
    """The order `user` placed on `device` under the start request's idempotency `key`, if any (the wizard asks after
    its request's reply was lost: review 22, finding 2)."""
    if not key or "\x00" in key:
        return None
    command = (Command.objects.filter(device=device, idempotency_key=key[:64], kind=CommandKind.START_INFUSION,
                                      created_by=user).select_related("session").first())  # fmt: skip
    return command.session if command is not None else None


def progress_history(session: InfusionSession, *, limit: int = 2000) -> list[ProgressSample]:
    """A session's stored progress samples, oldest first, thinned evenly to at most `limit` points."""
    samples = list(ProgressSample.objects.filter(session=session).order_by("recorded_at", "id"))
    if len(samples) <= limit:
        return samples
    step = len(samples) / limit
    return [samples[int(index * step)] for index in range(limit - 1)] + [samples[-1]]


def pump_state_reported_after(*, device: Device, at: datetime) -> bool:
    """Whether the pump reported its state (a status or an action at the pump) after `at`."""
    reports = DeviceEvent.objects.filter(device=device, kind__in=("mqtt.status", "mqtt.action"), received_at__gt=at)
    return reports.exists()


def pump_status_latest(*, device: Device, since: datetime, ignoring: Collection[str] = ()) -> dict | None:
    """The newest status the pump reported from `since` on whose word is not one of `ignoring` (its payload as
    stored, with its `receivedAt`), or None."""
    events = DeviceEvent.objects.filter(device=device, kind="mqtt.status", received_at__gte=since)
    if ignoring:
        events = events.exclude(payload__status__in=list(ignoring))
    event = events.order_by("-received_at", "-id").first()
    return {**event.payload, "receivedAt": event.received_at} if event is not None else None


def pump_online_latest(*, device: Device) -> datetime | None:
    """When the pump last said `online` (its current connection began then, for a pump with presence), or None."""
    events = DeviceEvent.objects.filter(device=device, kind="mqtt.status", payload__status="online")
    return events.order_by("-received_at", "-id").values_list("received_at", flat=True).first()


def pump_action_after(*, device: Device, after: datetime) -> DeviceEvent | None:
    """The first action at the pump's screen (`actions`: MANUAL_PAUSE, MANUAL_RESUME, ...) received after `after`."""
    actions = DeviceEvent.objects.filter(device=device, kind="mqtt.actions", received_at__gt=after)
    return actions.order_by("received_at", "id").first()


def press_joined(*, device: Device, kind: str, since: datetime, idempotency_key: str) -> bool:
    """Whether a press under `idempotency_key` was recorded as joining a command under way (`kind`: its
    `user.<command>` event) since `since`: the same request again (its reply lost) is not recorded twice."""
    presses = DeviceEvent.objects.filter(device=device, kind=kind, received_at__gte=since)
    return presses.filter(payload__idempotencyKey=idempotency_key, payload__joined__isnull=False).exists()


def events_recent(device: Device, *, limit: int = 30) -> list[DeviceEvent]:
    """The pump's most recent audit events of its present ward (`of_present_ward`), newest first."""
    events = DeviceEvent.objects.filter(of_present_ward(device.ward_id), device=device)
    return list(events.select_related("user", "session")[:limit])


def commands_recent(device: Device, *, limit: int = 5) -> list[Command]:
    """The pump's most recent commands of its present ward (`of_present_ward`), newest first."""
    commands = Command.objects.filter(of_present_ward(device.ward_id), device=device)
    return list(commands.select_related("created_by", "session")[:limit])
