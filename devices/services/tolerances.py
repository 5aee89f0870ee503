"""How close a reported parameter must be to the order to be the order (contract v1.1's read-back tolerances)."""

from devices.models import InfusionSession
from protocol.limits import RATE_DECIMALS, RATE_ROUNDING_ML_MIN

RATE_TOLERANCE = 0.005
VOLUME_TOLERANCE_ML = 0.05
TIME_TOLERANCE_MIN = 0.1


def rate_within_tolerance(*, ordered_ml_min: float, reported_ml_min: float) -> bool:
    """Whether a reported rate is within 0.5 % of the ordered rate as sent (6 decimals), plus rounding."""
    sent = round(ordered_ml_min, RATE_DECIMALS)
    return abs(reported_ml_min - sent) <= RATE_TOLERANCE * sent + RATE_ROUNDING_ML_MIN


def parameter_matches(session: InfusionSession, reported: dict, name: str) -> bool:
    """Whether the reported parameter `name` (the contract's name, present in `reported`) is `session`'s order within
    its tolerance; a disabled bolus equals a bolus of 0 (an enabled one is compared as `bolusVolumeMl`)."""
    value = reported[name]
    ordered_bolus = session.bolus_volume_ml if session.bolus_enabled else 0.0
    if name == "bolusEnabled":
        return value is True or ordered_bolus <= VOLUME_TOLERANCE_ML
    if isinstance(value, bool):
        return False
    if name == "flowRateMlMin":
        return rate_within_tolerance(ordered_ml_min=session.flow_rate_ml_min, reported_ml_min=value)
    if name == "plannedTimeMin":
        return abs(value - session.planned_time_min) <= TIME_TOLERANCE_MIN
    if name == "plannedVolumeMl":
        return abs(value - session.planned_volume_ml) <= VOLUME_TOLERANCE_ML
    return abs(value - ordered_bolus) <= VOLUME_TOLERANCE_ML


def is_figure(value: object) -> bool:
    """Whether a reported figure is a number to compare: an int or a float, not a bool, not NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
