"""The one writer of a pump's state (idle, running, paused), checked against its transition table."""

from devices.exceptions import PumpStreamError
from devices.models import Device
from devices.states import PUMP_TRANSITIONS, PumpState, is_legal


def pump_state_set(*, device: Device, state: PumpState, save: bool = True) -> bool:
    """Move the pump to `state` if `PUMP_TRANSITIONS` allows it; True when it changed.

    `save=False` leaves storing the row to the caller (the bulk progress path writes many pumps at once).
    """
    if device.pump_state == state:
        return False
    if not is_legal(PUMP_TRANSITIONS, device.pump_state, state):
        raise PumpStreamError(f"Pump state cannot go from {device.pump_state} to {state}", code="illegal_transition")
    device.pump_state = state
    if save:
        device.save(update_fields=["pump_state"])
    return True
