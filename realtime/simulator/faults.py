"""The alarm conditions a simulated pump can report, and how `error TYPE` / `clear TYPE` name them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """An alarm condition at the pump: its wire type, severity, message, and whether the pump pauses itself."""

    type: str
    severity: str
    message: str
    pauses: bool = False
    error_code: str = ""


FAULTS = {
    fault.type: fault
    for fault in (
        Fault("bubble_detected", "high",
              "Air bubble detected in IV line - infusion automatically paused for patient safety", True, "E_AIR"),
        Fault("occlusion", "high", "Downstream occlusion detected - infusion paused", True, "E_OCCL"),
        Fault("door_open", "medium", "Pump door opened during infusion - infusion paused", True, "E_DOOR"),
        Fault("battery_low", "medium", "Battery low - connect the pump to mains power", False, "E_BATT"),
        Fault("device_error", "high", "Internal pump error", True, "E_INT"),
    )
}  # fmt: skip
ALIASES = {"bubble": "bubble_detected", "air": "bubble_detected", "air_in_line": "bubble_detected",
           "door": "door_open", "battery": "battery_low", "low_battery": "battery_low"}  # fmt: skip
LOW_BATTERY_LEVEL = 12


def fault_named(name: str) -> Fault:
    """The fault for a name typed at the prompt or in a scenario; unknown names are reported as given."""
    name = ALIASES.get(name, name)
    return FAULTS.get(name) or Fault(name, "high", f"{name.replace('_', ' ').capitalize()} reported by the pump")


def cleared_type(fault_type: str) -> str:
    """The wire type that clears `fault_type`: `bubble_detected` → `bubble_cleared`."""
    base = fault_type.removesuffix("_detected")
    return f"{base}_cleared"
