"""The admin's own forms: a pump's edit (its rate limit in mL/h, never leaving a pump in use without a ward or in a
ward no one watches), a ward's edit (never leaving a ward with a pump in use watched by no one) and the reason asked by
the alarms' resolve action."""

from django import forms
from django.contrib.admin.helpers import ActionForm

from devices.models import Device, Ward
from devices.services.registration import pump_move_refusal
from devices.services.watchers import ward_members_refusal
from devices.states import AlarmResolveReason
from protocol.limits import MAX_VOLUME_ML, MIN_RATE_ML_H, MINUTES_PER_HOUR
from protocol.visible_text import text_kept


class DeviceAdminForm(forms.ModelForm):
    """The pump's rate limit asked in mL/h, as every clinical page speaks; stored in the contract's mL/min.

    Each field is posted back with the value the page showed (`show_hidden_initial`), so an edit saves only what
    the administrator changed on the page: a page opened before the pump reported new firmware (or before
    another edit) does not write the old value back (`pump_registration_save` writes only `changed_data`).
    """

    max_rate_ml_h = forms.FloatField(
        label="Maximum rate (mL/h)", min_value=MIN_RATE_ML_H, initial=20.0 * MINUTES_PER_HOUR,
        help_text="The pump's own limit; the start wizard refuses a faster order (and any over 999 mL/h).",
    )  # fmt: skip

    class Meta:
        model = Device
        exclude = ["max_rate_ml_min"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # what the page showed comes back with it: `changed_data` is then what
            field.show_hidden_initial = True  # the administrator changed, not what the bridge changed since
        if self.instance.pk:
            self.initial["max_rate_ml_h"] = round(self.instance.max_rate_ml_min * MINUTES_PER_HOUR, 4)

    def clean_max_volume_ml(self) -> float:
        """No more than an order may be (`MAX_VOLUME_ML`): a pump registered for more would be offered orders that
        every page refuses, and a slip of a zero is caught here."""
        volume = self.cleaned_data["max_volume_ml"]
        if volume is not None and volume > MAX_VOLUME_ML:
            raise forms.ValidationError(f"At most {MAX_VOLUME_ML:g} mL: no order may be larger.")
        return volume

    def clean(self) -> dict:
        """A pump in use is never left without a ward (as its ward is never deleted then), nor moved into a ward no one
        watches (`pump_move_refusal`): the refusal on the page; the service checks it again under the pump's lock."""
        cleaned = super().clean()
        if "ward" in self.changed_data and "ward" in cleaned and self.instance.pk:
            refusal = pump_move_refusal(device=self.instance, ward=cleaned["ward"])
            if refusal:
                self.add_error("ward", refusal)
        return cleaned

    def save(self, commit: bool = True) -> Device:
        self.instance.max_rate_ml_min = self.cleaned_data["max_rate_ml_h"] / MINUTES_PER_HOUR
        return super().save(commit=commit)


class WardAdminForm(forms.ModelForm):
    """A ward's members: its last watcher is not removed while one of its pumps is in use (`ward_members_refusal`)."""

    class Meta:
        model = Ward
        fields = "__all__"

    def clean_name(self) -> str:
        """Kept as a person's text is (`text_kept`): the ward's page is headed "<name> · pumps" (review 39)."""
        name = text_kept(self.cleaned_data["name"])
        if not name:
            raise forms.ValidationError("Enter a name that shows on a screen.")
        return name

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance.pk and "members" in self.changed_data and cleaned.get("members") is not None:
            refusal = ward_members_refusal(ward=self.instance, members=cleaned["members"])
            if refusal:
                self.add_error("members", refusal)
        return cleaned


class AlarmResolveForm(ActionForm):
    """The admin's resolve action asks for the coded reason and a note, as the monitor's dialog does."""

    reason = forms.ChoiceField(choices=[("", "— reason —"), *AlarmResolveReason.choices], required=False)
    note = forms.CharField(max_length=500, required=False)
