"""What a pump could have delivered since its last progress: allowed when its `completed` or `idle` is judged.

A pump reports progress about once a second, so its last progress before it says `completed` (or `idle`) can be up
to a second old: at 999 mL/h, 0.28 mL short of the order. When its final progress (`completed`, nothing remaining)
is lost (the original firmware publishes at QoS 0), that older one is all the server holds, and a normal completion
ended `interrupted` with a high `infusion_interrupted` (review 45). What it could have delivered since is its reported
rate (never more than the order's, within the rate tolerance) times the time since that progress: the server's
receive times, which the pump's own timestamps may only narrow, never widen (both numbers, or both ISO-8601 with an
offset; as `delivery.py` lets the pump's clock narrow a window), and never more than `UNREPORTED_MAX_S`, so a report
received long after it was sent (queued while the bridge was away) buys nothing more. A pump paused, or whose last
progress did not say it runs, delivered nothing since. So a completion with the order clearly short (22 of 30 mL left)
stays `interrupted` at any rate. Nor more than `UNREPORTED_MAX_SHARE` of the order (review 47, M3): at 999 mL/h,
2 s is 0.56 mL, more than a quarter of a 2 mL order; a twentieth is a pump's own volume accuracy (about 5 %), so the
allowance never calls "Completed" an order whose last figure left more of it than the pump's accuracy. Its cost: a
small order at a high rate whose final progress was lost and whose completion carries no `totalVolumeMl` (a status
`completed`, `idle`) ends `interrupted`, a false alarm on the safe side (a completion's `totalVolumeMl`, when given,
judges alone: `completions.py`).
"""

from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.tolerances import RATE_TOLERANCE, is_figure
from devices.states import SessionStatus
from protocol.schemas import device_timestamp_parse

# The time since its last progress a pump's `completed` may stand for: its final progress lost (one a second), and
# the jitter of the two messages' timing; not a silence (several progress reports lost: the server saw nothing).
UNREPORTED_MAX_S = 2.0
UNREPORTED_MAX_SHARE = 0.05  # of the order's planned volume: a pump's volume accuracy
RUNNING_PROGRESS = (None, "running")


def unreported_ml(*, device: Device, session: InfusionSession, sent: object, received_at: datetime) -> float:
    """What `device` could have delivered of the running `session` since its last progress, when it sent (`sent`:
    its own `timestamp`) the report received at `received_at`, at most `UNREPORTED_MAX_SHARE` of the order; 0 when
    nothing says it ran since."""
    progress, progress_at = session.progress_on(device) or {}, session.progress_at_on(device)
    rate = progress.get("flowRate")
    if session.status != SessionStatus.RUNNING or progress.get("status") not in RUNNING_PROGRESS:
        return 0.0
    if progress_at is None or not is_figure(rate) or rate <= 0:
        return 0.0
    rate_ml_min = min(rate, session.flow_rate_ml_min * (1 + RATE_TOLERANCE))
    since_ml = rate_ml_min * _seconds_since(progress.get("timestamp"), sent, progress_at, received_at) / 60
    return min(since_ml, UNREPORTED_MAX_SHARE * session.planned_volume_ml)


def _seconds_since(progress_sent: object, sent: object, progress_at: datetime, received_at: datetime) -> float:
    """The time between the progress and the report: by the server's receive times, narrowed by the pump's own clock
    where it is shorter, at most UNREPORTED_MAX_S."""
    seconds = (received_at - progress_at).total_seconds()
    by_pump = _pump_clock_s(progress_sent, sent)
    if by_pump is not None and by_pump >= 0:
        seconds = min(seconds, by_pump)
    return min(max(seconds, 0.0), UNREPORTED_MAX_S)


def _pump_clock_s(before: object, after: object) -> float | None:
    """Seconds between two of the pump's timestamps on one clock (uptime or epoch ms; ISO-8601 with an offset), else
    None (one missing, or not comparable)."""
    if is_figure(before) and is_figure(after):
        return (after - before) / 1000
    start, end = device_timestamp_parse(before), device_timestamp_parse(after)
    return (end - start).total_seconds() if start is not None and end is not None else None


def percent_says_finished(percent: float | None, *, planned_ml: float, unreported: float) -> bool:
    """Whether a progress percentage says the order was delivered: 100 %, or what it leaves of the `planned_ml`
    no more than the `unreported` mL the pump could have delivered since."""
    if percent is None:
        return False
    return percent >= 100 or (unreported > 0 and planned_ml * (100 - percent) / 100 <= unreported)
