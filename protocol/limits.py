"""One set of global limits for an infusion order (wire units: mL/min, mL, min); no Django imports.

The order form, the services and the bridge's payload schemas all read these, so the bridge accepts at
least everything an order may be. Per-drug limits, when they come, sit inside these.
"""

from dataclasses import dataclass

MINUTES_PER_HOUR = 60.0
MIN_RATE_ML_H = 0.1
MAX_RATE_ML_H = 999.0
MIN_RATE_ML_MIN = MIN_RATE_ML_H / MINUTES_PER_HOUR
MAX_RATE_ML_MIN = MAX_RATE_ML_H / MINUTES_PER_HOUR
MAX_TIME_MIN = 7 * 24 * 60.0  # seven days
MAX_VOLUME_ML = 5_000.0  # an order's volume, whatever the pump's registration says (its reports stay on the wire)
MAX_BOLUS_SHARE = 0.5  # a bolus is at most half the ordered volume
LIMIT_TOLERANCE = 1e-9  # a value this close over a limit is within it (float arithmetic of mL/h and mL/min)
RATE_DECIMALS = 6  # the contract (v1.1): flowRateMlMin rounded to 6 decimals
RATE_ROUNDING_ML_MIN = 0.000001  # one unit of its last decimal: what a rate compared with the rate as sent allows
# The third of rate, volume and time an order derives (devices/forms.py): the volume and time to these decimals, by
# Python's `round`; the start wizard derives it by the same rule (static/js/order_derivation.js) to show the order.
VOLUME_DECIMALS = 2
TIME_DECIMALS = 2
# What the bridge accepts from a pump: at least every order, with room for a pump's own counting
# (a legacy pump counts the bolus twice in its totals; time left grows while paused).
WIRE_MAX_RATE_ML_MIN = 1_000.0
WIRE_MAX_VOLUME_ML = 10_000.0
WIRE_MAX_TIME_MIN = 2 * MAX_TIME_MIN


@dataclass(frozen=True)
class LimitBreach:
    """Which field of an order breaks a limit, and a sentence for the clinician."""

    field: str
    message: str


def rate_limits_ml_min(pump_max_rate_ml_min: float | None = None) -> tuple[float, float]:
    """The lowest and highest rate an order may have: 0.1-999 mL/h, or up to the pump's maximum if lower."""
    high = MAX_RATE_ML_MIN if pump_max_rate_ml_min is None else min(MAX_RATE_ML_MIN, pump_max_rate_ml_min)
    return MIN_RATE_ML_MIN, high


def rate_limit_text_ml_h(high_ml_min: float) -> str:
    """A rate limit in mL/h as the clinician reads it (999/60 mL/min reads "999", never "998.9999999999999")."""
    return f"{high_ml_min * MINUTES_PER_HOUR:g}"


def order_limits_for_page(pump_max_rate_ml_min: float | None, pump_max_bolus_ml: float | None) -> dict:
    """The limits `order_limits_check` applies to a pump's orders, for a page to check the same ones first."""
    _, high = rate_limits_ml_min(pump_max_rate_ml_min)
    return {
        "maxRateMlMin": high,
        "maxRateText": rate_limit_text_ml_h(high),
        "maxBolusShare": MAX_BOLUS_SHARE,
        "pumpMaxBolusMl": pump_max_bolus_ml,
        "tolerance": LIMIT_TOLERANCE,
        "decimals": {"rateMlMin": RATE_DECIMALS, "volumeMl": VOLUME_DECIMALS, "timeMin": TIME_DECIMALS},
    }


def order_figures_agree(*, flow_rate_ml_min: float, planned_volume_ml: float, planned_time_min: float) -> bool:
    """Whether rate x time is the volume to within the rounding of the figure an order derives from the other two:
    half the last decimal of a derived volume (0.005 mL), of a derived time (0.005 min at this rate), or of a derived
    rate (0.0000005 mL/min over this time). Every order `devices/forms.py::order_figures` derives agrees so; three
    figures given that do not are no order: the pump would be sent figures that disagree (review 33, finding 4: 121
    mL/h for 15 min with 30 mL, which is 30.25 mL, was taken within 1 %)."""
    allowed = max(
        _half_of_last_decimal(VOLUME_DECIMALS),
        _half_of_last_decimal(TIME_DECIMALS) * flow_rate_ml_min,
        _half_of_last_decimal(RATE_DECIMALS) * planned_time_min,
    )
    return abs(flow_rate_ml_min * planned_time_min - planned_volume_ml) <= allowed + LIMIT_TOLERANCE


def _half_of_last_decimal(decimals: int) -> float:
    return 0.5 * 10.0**-decimals


def bolus_limit_ml(planned_volume_ml: float, pump_max_bolus_ml: float | None = None) -> float:
    """The largest bolus an order may have: half its volume, and no more than the pump's maximum."""
    limit = planned_volume_ml * MAX_BOLUS_SHARE
    return limit if pump_max_bolus_ml is None else min(limit, pump_max_bolus_ml)


def order_limits_check(
    *, flow_rate_ml_min: float, planned_time_min: float, planned_volume_ml: float, bolus_volume_ml: float = 0.0,
    pump_max_rate_ml_min: float | None = None, pump_max_bolus_ml: float | None = None,
) -> LimitBreach | None:  # fmt: skip
    """The first global limit an order breaks (rate, volume, time, bolus), or None."""
    low, high = rate_limits_ml_min(pump_max_rate_ml_min)
    tolerance = LIMIT_TOLERANCE
    if planned_volume_ml > MAX_VOLUME_ML + tolerance:
        return LimitBreach("planned_volume_ml", f"The volume may be at most {MAX_VOLUME_ML:g} mL.")
    if flow_rate_ml_min < low - tolerance:
        return LimitBreach("flow_rate_ml_min", f"The rate must be at least {MIN_RATE_ML_H:g} mL/h.")
    if flow_rate_ml_min > high + tolerance:
        return LimitBreach("flow_rate_ml_min", f"The rate may be at most {rate_limit_text_ml_h(high)} mL/h.")
    if planned_time_min > MAX_TIME_MIN + tolerance:
        return LimitBreach("planned_time_min", f"The time may be at most {MAX_TIME_MIN / 1440:g} days.")
    bolus_max = bolus_limit_ml(planned_volume_ml, pump_max_bolus_ml)
    if bolus_volume_ml > bolus_max + tolerance:
        return LimitBreach(
            "bolus_volume_ml",
            f"The bolus may be at most {bolus_max:g} mL (half the volume"
            + (", and this pump's maximum)." if pump_max_bolus_ml is not None else ")."),
        )
    return None
