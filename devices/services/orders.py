"""An order: what a clinician ordered (`InfusionOrder`), and the server's rules for it (`order_validate`)."""

from dataclasses import dataclass

from devices.exceptions import PumpStreamError
from devices.models import Device
from devices.services.tolerances import VOLUME_TOLERANCE_ML
from protocol.limits import order_limits_check


@dataclass(frozen=True)
class InfusionOrder:
    """What a clinician ordered, in the wire's units (mL/min, mL, min)."""

    flow_rate_ml_min: float
    planned_volume_ml: float
    planned_time_min: float
    bolus_enabled: bool = False
    bolus_volume_ml: float = 0.0
    drug: str = ""
    patient: dict | None = None  # name, age, weight_kg, bed, allergies; None means skipped


def order_validate(order: InfusionOrder, device: Device) -> None:
    """The server's rules for an order (the wizard checks the same); raises naming the wrong field."""
    for field, value in (
        ("flow_rate_ml_min", order.flow_rate_ml_min),
        ("planned_volume_ml", order.planned_volume_ml),
        ("planned_time_min", order.planned_time_min),
    ):
        if not isinstance(value, int | float) or value != value or value <= 0:
            raise PumpStreamError(f"{field} must be a positive number", code="invalid_order", field=field)
    if order.planned_volume_ml > device.max_volume_ml:
        raise PumpStreamError(
            f"Volume exceeds this pump's maximum of {device.max_volume_ml:g} mL",
            code="invalid_order", field="planned_volume_ml",
        )  # fmt: skip
    expected_volume = order.flow_rate_ml_min * order.planned_time_min
    if abs(expected_volume - order.planned_volume_ml) > max(VOLUME_TOLERANCE_ML, 0.01 * order.planned_volume_ml):
        raise PumpStreamError("Rate × time must equal the volume", code="invalid_order", field="planned_time_min")
    if order.bolus_enabled and not order.bolus_volume_ml > 0:
        raise PumpStreamError("Bolus volume must be positive", code="invalid_order", field="bolus_volume_ml")
    breach = order_limits_check(
        flow_rate_ml_min=order.flow_rate_ml_min, planned_time_min=order.planned_time_min,
        planned_volume_ml=order.planned_volume_ml, bolus_volume_ml=order.bolus_volume_ml if order.bolus_enabled else 0,
        pump_max_rate_ml_min=device.max_rate_ml_min, pump_max_bolus_ml=device.max_bolus_ml,
    )  # fmt: skip
    if breach is not None:
        raise PumpStreamError(breach.message, code="invalid_order", field=breach.field)
