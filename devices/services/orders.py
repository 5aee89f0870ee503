"""An order: what a clinician ordered (`InfusionOrder`), the server's rules for it (`order_validate`), and the order
a repeated start request means (`order_repeat_find`)."""

from dataclasses import dataclass
from typing import Any

from devices.exceptions import PumpStreamError
from devices.models import Command, Device, InfusionSession
from devices.states import CommandKind
from protocol.limits import RATE_DECIMALS, order_figures_agree, order_limits_check
from protocol.visible_text import shows_nothing, without_bidi_controls

DRUG_MAX_LENGTH = 100  # the session's column


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
    """The server's rules for an order (the wizard checks the same); raises naming the wrong field. The drug too: an
    order placed by any caller, not only the wizard's form, names what runs (a pump's screen showing a blank drug
    tells the nurse nothing of what is in the line)."""
    if not isinstance(order.drug, str) or shows_nothing(order.drug) or len(order.drug) > DRUG_MAX_LENGTH:
        raise PumpStreamError(
            f"Enter the drug being infused (at most {DRUG_MAX_LENGTH} characters)", code="invalid_order", field="drug"
        )
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
    if not order_figures_agree(
        flow_rate_ml_min=round(order.flow_rate_ml_min, RATE_DECIMALS), planned_volume_ml=order.planned_volume_ml,
        planned_time_min=order.planned_time_min,
    ):  # fmt: skip
        # within rounding, not 1 %: the pump is sent these three, which must agree (review 33, finding 4)
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


def order_repeat_find(
    *, device: Device, order: InfusionOrder, user: Any, idempotency_key: str
) -> InfusionSession | None:
    """The order a repeated start request means: the one whose START was queued under the same key (the wizard's reply
    was lost, and it asks again), whatever became of it since; None for a new key. A key once used for another order
    or by another person is refused, never answered with that order (review 22, finding 2)."""
    if not idempotency_key:
        return None
    command = Command.objects.filter(device=device, idempotency_key=idempotency_key[:64]).select_related("session")
    command = command.first()
    if command is None:
        return None
    session = command.session
    if command.kind != CommandKind.START_INFUSION or session is None or not _same_order(session, order, user):
        raise PumpStreamError("This Idempotency-Key was already used for another request: send this order with a new "
                              "key", code="idempotency_conflict")  # fmt: skip
    return session


def order_session_fields(order: InfusionOrder) -> dict[str, Any]:
    """The fields of the session an order places, as stored (`sessions._session_create`; `_same_order` compares). Its
    texts without direction controls, as a pump's are kept (`protocol/visible_text.py`): a drug or name is shown inside
    the server's own words, and an override left open turned the words after it around (review 37, finding 8)."""
    patient = order.patient or {}

    def text(value: str, most: int) -> str:
        return without_bidi_controls(value)[:most]

    return {
        "flow_rate_ml_min": round(order.flow_rate_ml_min, RATE_DECIMALS), "planned_volume_ml": order.planned_volume_ml,
        "planned_time_min": order.planned_time_min, "bolus_enabled": order.bolus_enabled,
        "bolus_volume_ml": order.bolus_volume_ml if order.bolus_enabled else 0.0, "drug": text(order.drug, 100),
        "patient_skipped": order.patient is None, "patient_name": text(patient.get("name", ""), 200),
        "patient_age": patient.get("age"), "patient_weight_kg": patient.get("weight_kg"),
        "patient_bed": text(patient.get("bed", ""), 32), "patient_allergies": text(patient.get("allergies", ""), 500),
    }  # fmt: skip


def _same_order(session: InfusionSession, order: InfusionOrder, user: Any) -> bool:
    """Whether `session` was created for this order, every field of it and of its patient, by this person (review 24,
    finding 6: the same key with other allergies, bed, weight or age is another order)."""
    placed = all(getattr(session, field) == value for field, value in order_session_fields(order).items())
    return placed and session.started_by_id == getattr(user, "pk", None)
