"""The start-infusion wizard's server-side rules: any two of rate, volume and time give the third (three given must
agree as a derived order does: `protocol.limits.order_figures_agree`)."""

from django import forms

from devices.models import Device
from devices.services.orders import InfusionOrder
from protocol.limits import (
    MINUTES_PER_HOUR,
    RATE_DECIMALS,
    TIME_DECIMALS,
    VOLUME_DECIMALS,
    order_figures_agree,
    order_limits_check,
)
from protocol.visible_text import shows_nothing

CONFIRM_WORD = "start"
DRUG_REQUIRED = "Enter the drug being infused (as on the bag or syringe label)."
DRUG_SHOWS_NOTHING = f"{DRUG_REQUIRED.removesuffix('.')}: what was typed shows no visible character."
PATIENT_NAME_REQUIRED = "Enter the patient's name, or choose Skip."
PATIENT_NAME_SHOWS_NOTHING = "The patient's name typed shows no visible character: enter it, or choose Skip."
# The services name their fields in wire units; the wizard's fields are what the clinician typed.
SERVICE_FIELD_TO_FORM = {
    "flow_rate_ml_min": "rate_ml_h",
    "planned_volume_ml": "volume_ml",
    "planned_time_min": "time_min",
    "bolus_volume_ml": "bolus_volume_ml",
}


def order_figures(
    *, rate_ml_h: float | None, volume_ml: float | None, time_min: float | None
) -> tuple[float, float, float] | None:
    """The order's rate in mL/min as sent, its volume and its time, from any two of rate (mL/h), volume and time (None
    for the one left out): the rate rounded to the wire's 6 decimals first, then the volume or time derived from it,
    rounded by Python's `round`. None when the rate rounds to nothing. The wizard derives its review by the same rule
    (static/js/order_derivation.js, tests/devices/test_order_figures.py), so the nurse confirms the order as placed."""
    if rate_ml_h is None:
        rate_ml_h = volume_ml / time_min * MINUTES_PER_HOUR
    rate_ml_min = round(rate_ml_h / MINUTES_PER_HOUR, RATE_DECIMALS)
    if rate_ml_min <= 0:
        return None
    if time_min is None:
        time_min = round(volume_ml / rate_ml_min, TIME_DECIMALS)
    if volume_ml is None:
        volume_ml = round(rate_ml_min * time_min, VOLUME_DECIMALS)
    return rate_ml_min, volume_ml, time_min


def figures_disagree_message(rate_ml_min: float, volume_ml: float, time_min: float) -> str:
    """Three figures typed that are no order, in the wizard's words (static/js/wizard.js says the same)."""
    rate, product = figure(rate_ml_min * MINUTES_PER_HOUR), figure(rate_ml_min * time_min)
    return (
        f"Rate × time must equal the volume: {rate} mL/h for {figure(time_min)} min is {product} mL, not "
        f"{figure(volume_ml)} mL. Clear one of the three to recompute it."
    )


def figure(value: float) -> str:
    """A figure of a message to 3 decimals at most, as format.js `exactNumber` writes it (30.25, 15, 0.103)."""
    return f"{round(value, 3):f}".rstrip("0").rstrip(".")


class InfusionOrderForm(forms.Form):
    """Patient (or a recorded skip), then the drug, rate in mL/h, volume in mL and time in min, bolus, and "start"."""

    patient_skipped = forms.BooleanField(required=False)
    patient_name = forms.CharField(required=False, max_length=200)
    patient_age = forms.IntegerField(required=False, min_value=0, max_value=130)
    patient_weight_kg = forms.FloatField(required=False, min_value=0.2, max_value=500)
    patient_bed = forms.CharField(required=False, max_length=32)
    patient_allergies = forms.CharField(required=False, max_length=500)
    # On the infusion step, not the patient step: skipping the patient never skips the drug.
    drug = forms.CharField(max_length=100, strip=True, error_messages={"required": DRUG_REQUIRED})
    rate_ml_h = forms.FloatField(required=False, min_value=0.1)
    volume_ml = forms.FloatField(required=False, min_value=0.1)
    time_min = forms.FloatField(required=False, min_value=0.1)
    bolus_enabled = forms.BooleanField(required=False)
    bolus_volume_ml = forms.FloatField(required=False, min_value=0)
    confirm = forms.CharField(required=False, max_length=20)

    def __init__(self, *args, device: Device, require_confirm: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.device = device
        self.require_confirm = require_confirm

    def clean_drug(self) -> str:
        """A drug of characters that draw nothing (a zero-width space, joiners) is no drug: the order shows blank."""
        drug = self.cleaned_data["drug"]
        if shows_nothing(drug):
            raise forms.ValidationError(DRUG_SHOWS_NOTHING)
        return drug

    def clean_patient_bed(self) -> str:
        return self._empty_if_shows_nothing("patient_bed")

    def clean_patient_allergies(self) -> str:
        return self._empty_if_shows_nothing("patient_allergies")

    def _empty_if_shows_nothing(self, name: str) -> str:
        """An optional field of characters that draw nothing is stored empty, so screens say "—" as for one left
        empty, not a blank that looks filled in."""
        text = self.cleaned_data[name]
        return "" if shows_nothing(text) else text

    def clean(self) -> dict:
        """Fill in the third of rate/volume/time, then check bolus, capacity, the patient and the confirmation."""
        data = super().clean()
        if self.errors:
            return data
        self._complete_rate_volume_time(data)
        if self.errors:
            return data
        self._check_capacity(data["volume_ml"])
        self._check_bolus(data)
        self._check_limits(data)
        self._check_patient(data)
        if self.require_confirm and (data.get("confirm") or "").strip().lower() != CONFIRM_WORD:
            self.add_error("confirm", f'Type "{CONFIRM_WORD}" to confirm the infusion.')
        return data

    def _complete_rate_volume_time(self, data: dict) -> None:
        rate_h, volume, minutes = data.get("rate_ml_h"), data.get("volume_ml"), data.get("time_min")
        missing = [name for name in ("rate_ml_h", "volume_ml", "time_min") if data.get(name) is None]
        if len(missing) > 1:
            for name in missing:
                self.add_error(name, "Enter any two of rate, volume and time.")
            return
        figures = order_figures(rate_ml_h=rate_h, volume_ml=volume, time_min=minutes)
        if figures is None:
            self.add_error("rate_ml_h", "The rate is too small for this pump.")
            return
        rate_ml_min, volume, minutes = figures
        if not order_figures_agree(flow_rate_ml_min=rate_ml_min, planned_volume_ml=volume, planned_time_min=minutes):
            self.add_error("time_min", figures_disagree_message(rate_ml_min, volume, minutes))
            return
        data.update(rate_ml_h=rate_ml_min * MINUTES_PER_HOUR, volume_ml=volume, time_min=minutes,
                    flow_rate_ml_min=rate_ml_min)  # fmt: skip

    def _check_capacity(self, volume: float) -> None:
        """The pump's volume; its rate is checked with the global limits (`order_limits_check`, one message)."""
        if volume > self.device.max_volume_ml + 1e-9:
            self.add_error("volume_ml", f"This pump holds at most {self.device.max_volume_ml:g} mL.")

    def _check_bolus(self, data: dict) -> None:
        if not data.get("bolus_enabled"):
            data["bolus_volume_ml"] = 0.0
            return
        bolus = data.get("bolus_volume_ml")  # its limit (half the volume, the pump's) is `order_limits_check`'s
        if bolus is None or bolus <= 0:
            self.add_error("bolus_volume_ml", "Enter the bolus volume, or turn the bolus off.")

    def _check_limits(self, data: dict) -> None:
        """The global limits (protocol/limits.py), as the services and the bridge apply them."""
        if self.errors:
            return
        breach = order_limits_check(
            flow_rate_ml_min=data["flow_rate_ml_min"], planned_time_min=data["time_min"],
            planned_volume_ml=data["volume_ml"], bolus_volume_ml=data.get("bolus_volume_ml") or 0.0,
            pump_max_rate_ml_min=self.device.max_rate_ml_min, pump_max_bolus_ml=self.device.max_bolus_ml,
        )  # fmt: skip
        if breach is not None:
            self.add_error(SERVICE_FIELD_TO_FORM[breach.field], breach.message)

    def _check_patient(self, data: dict) -> None:
        if data.get("patient_skipped"):
            return
        name = data.get("patient_name") or ""
        if shows_nothing(name):
            self.add_error("patient_name", PATIENT_NAME_SHOWS_NOTHING if name.strip() else PATIENT_NAME_REQUIRED)

    def order(self) -> InfusionOrder:
        """The validated order in the wire's units (call after `is_valid()`)."""
        data = self.cleaned_data
        patient = None
        if not data.get("patient_skipped"):
            patient = {
                "name": data.get("patient_name") or "",
                "age": data.get("patient_age"),
                "weight_kg": data.get("patient_weight_kg"),
                "bed": data.get("patient_bed") or "",
                "allergies": data.get("patient_allergies") or "",
            }
        return InfusionOrder(
            flow_rate_ml_min=data["flow_rate_ml_min"],
            planned_volume_ml=data["volume_ml"],
            planned_time_min=data["time_min"],
            bolus_enabled=bool(data.get("bolus_enabled")),
            bolus_volume_ml=data.get("bolus_volume_ml") or 0.0,
            drug=data.get("drug") or "",
            patient=patient,
        )

    def first_error(self) -> tuple[str | None, str]:
        """The first wrong field and its message, for a one-line answer."""
        for name, messages in self.errors.items():
            return (None if name == "__all__" else name), str(messages[0])
        return None, ""


def alert_number_text(text: str) -> bool:
    """ASCII digits, at most 9 (`isdigit` also takes "²", which `int` refuses, and any length)."""
    return text.isascii() and text.isdigit() and len(text) <= 9
