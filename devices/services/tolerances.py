"""How close a reported parameter must be to the order to be the order (contract v1.1's read-back tolerances)."""

from protocol.limits import RATE_DECIMALS, RATE_ROUNDING_ML_MIN

RATE_TOLERANCE = 0.005
VOLUME_TOLERANCE_ML = 0.05
TIME_TOLERANCE_MIN = 0.1


def rate_within_tolerance(*, ordered_ml_min: float, reported_ml_min: float) -> bool:
    """Whether a reported rate is within 0.5 % of the ordered rate as sent (6 decimals), plus rounding."""
    sent = round(ordered_ml_min, RATE_DECIMALS)
    return abs(reported_ml_min - sent) <= RATE_TOLERANCE * sent + RATE_ROUNDING_ML_MIN
