"""When a pump was last heard (`last_seen_at`): the one writer of it, for the one-message path and the bulk progress
path alike.

Last heard is the server's receive time of the pump's newest message (`InboundMessage.received_at`, taken when paho
hands the message over), never the pump's own `timestamp`: a pump whose clock runs in the future cannot make itself
look heard later than it was. It only moves forward: a message applied after one the server received later (a
bridge that took a pump's slot over with the other's clock a little ahead, a clock stepped back) is heard, but does
not make the pump look quieter than it is. What would make a silent pump look alive is a stored moment still to come
on the server's clock (a clock that ran ahead, then was corrected): that is no hearing, and the receive time
replaces it, so a pump that then goes quiet turns stale a heartbeat timeout after the last message the server really
received, not when the wrong clock's moment comes. A pump already quiet when the clock is put right sends nothing to
replace it: housekeeping brings such moments back to now (`heard_moments_pull_back`).
"""

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from devices.models import Device, InfusionSession
from devices.states import ACTIVE_SESSION_STATUSES, AHEAD_TOLERANCE_S, Presence


def pump_heard(
    *, device: Device, received_at: datetime, says_offline: bool = False, live: bool = True
) -> tuple[str, ...]:
    """The pump was heard at `received_at`: `last_seen_at` as `heard_at` says, and presence back online unless the
    message is an `offline` (`says_offline`) or not `live` (a retained copy, the broker's: it never says the pump is
    there now). Returns the fields set (`last_seen_at` always: written with every message, one UPDATE of one shape);
    the caller stores them.

    An `offline` is no hearing: it is mostly the broker speaking for a pump it stopped hearing (its Last Will, a
    keepalive and a half after the pump's last packet), and "last heard" stays at the pump's last message of its
    own, on every page (review 28: "Offline · Last heard 0 s ago" for a pump silent 51 s). A pump's own goodbye
    then reads a few milliseconds older than it was."""
    if not says_offline:
        device.last_seen_at = heard_at(stored=device.last_seen_at, received_at=received_at)
    if device.presence == Presence.OFFLINE and live and not says_offline:
        device.presence = Presence.ONLINE
        return ("last_seen_at", "presence")
    return ("last_seen_at",)


def heard_at(*, stored: datetime | None, received_at: datetime, now: datetime | None = None) -> datetime:
    """The pump's last heard moment once a message received at `received_at` is applied: the later of the two, but
    never a stored moment still to come on the server's clock (`now`, read only when the stored one is the later)."""
    if stored is None or received_at >= stored:
        return received_at
    if stored > (now or timezone.now()):
        return received_at  # never heard at a moment that has not come yet: a clock that ran ahead wrote it
    return stored


def heard_moments_pull_back(*, now: datetime) -> int:
    """Moments of hearing still to come on the server's clock (more than AHEAD_TOLERANCE_S after `now`) brought back
    to `now`, the latest they can truly be; returns how many rows moved.

    A pump last heard while the clock ran ahead (a wrong NTP source, a VM restored with its host's clock ahead) and
    silent since the clock was put right is never heard again: `heard_at` replaces such a moment only then, and the
    pump read online, its running infusion never silent, until the wrong clock's moment came (review 29: an hour).
    Pulled back, its silence is measured from the correction at the latest. Moved are what silence reads (the pump's
    `last_seen_at` and `latest_progress_at`, its active session's `status_changed_at`) and the session's
    `prior_progress_at`, kept in the same order against the pump's progress (`_prior_pulled_back`). Read first,
    written only when something lies ahead (SQLite takes its write lock for an UPDATE matching nothing)."""
    after = now + timedelta(seconds=AHEAD_TOLERANCE_S)
    moved = _sessions_pull_back(now=now, after=after)  # first: they compare with the pump's progress as it was
    if _devices_ahead(after).exists():
        for field in DEVICE_MOMENTS:
            moved += Device.objects.filter(**{f"{field}__gt": after}).update(**{field: now})
    return moved


def hearing_ahead(after: datetime) -> list[QuerySet]:
    """The rows holding a moment of hearing after `after` (for one read of every moment ahead: `deadlines_ahead`)."""
    return [_devices_ahead(after), _sessions_ahead(after)]


# A pump's moments a later message is compared with: of hearing (silence), of its uptime mark (a reboot under a reused
# bootId: review 49, an uptime mark ahead took every later status for older news and hid the reboot) and of its latest
# boot (a command published after it is credited: review 49, a Pause carried out was not)
DEVICE_MOMENTS = ("last_seen_at", "latest_progress_at", "last_uptime_at", "booted_at")


def any_after(fields: tuple[str, ...], after: datetime) -> Q:
    """Rows holding any of these moments after `after`."""
    ahead = Q()
    for field in fields:
        ahead |= Q(**{f"{field}__gt": after})
    return ahead


def _devices_ahead(after: datetime) -> QuerySet:
    return Device.objects.filter(any_after(DEVICE_MOMENTS, after))


def _sessions_ahead(after: datetime) -> QuerySet:
    moments = Q(status_changed_at__gt=after) | Q(prior_progress_at__gt=after)
    moments |= Q(delivery_window_at__gt=after) | Q(last_sampled_at__gt=after)
    return InfusionSession.objects.filter(moments, status__in=ACTIVE_SESSION_STATUSES)


def _sessions_pull_back(*, now: datetime, after: datetime) -> int:
    """Active sessions' moments still to come brought back (rare: only after a clock ran ahead, one row at a time)."""
    moved = 0
    for session in _sessions_ahead(after).select_related("device"):
        prior = session.prior_progress_at
        if prior is not None and prior > after:
            prior = _prior_pulled_back(prior, latest=session.device.latest_progress_at, now=now, after=after)
        changed_at = now if session.status_changed_at > after else session.status_changed_at
        # the delivery window begun ahead starts again at the next report (moved to now with its volume, it would
        # judge the hour's delivery over seconds; left, it never spans its length: review 49, ten times the rate
        # unalarmed); the history's last point ahead is taken as now (left, no point for the hour)
        moved += InfusionSession.objects.filter(pk=session.pk).update(
            status_changed_at=changed_at, prior_progress_at=prior,
            delivery_window_at=_unless_after(session.delivery_window_at, after, None),
            last_sampled_at=_unless_after(session.last_sampled_at, after, now),
        )  # fmt: skip
    return moved


def _unless_after(moment: datetime | None, after: datetime, instead: datetime | None) -> datetime | None:
    return instead if moment is not None and moment > after else moment


def _prior_pulled_back(prior: datetime, *, latest: datetime | None, now: datetime, after: datetime) -> datetime:
    """A session's copy of the pump's `latest_progress_at` (the progress before it was this session's), brought back
    so that `progress_on` judges as before: equal to the pump's moment once pulled back if it is still the progress
    copied, just before it if the pump's progress is newer (applied since the copy, though perhaps stamped earlier by
    the clock put right)."""
    pulled = now if latest is None or latest > after else latest
    return pulled if latest == prior else pulled - timedelta(microseconds=1)
