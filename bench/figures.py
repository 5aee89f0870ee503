"""What the comparison and storm runs share: the targets' order, their server processes, medians and ranges."""

import statistics

TARGET_ORDER = ("node", "bare", "before", "pumpstream", "pumpstream+devices")
# "before": PumpStream from another checkout (--before); "pumpstream+devices": its storm with `subscribe:devices`
SERVER_PROCESSES = {"node": ("relay",), "bare": ("relay",), "before": ("daphne", "bridge"),
                    "pumpstream": ("daphne", "bridge"), "pumpstream+devices": ("daphne", "bridge")}  # fmt: skip


def rotated(round_number: int, present) -> list[str]:
    """The targets present, in round `round_number`'s order (rotated, so none always runs first or last)."""
    names = [name for name in TARGET_ORDER if name in present]
    shift = round_number % max(len(names), 1)
    return names[shift:] + names[:shift]


def server_cpu_us(phase: dict) -> float:
    """CPU µs per message of the target's own server processes (the broker not included)."""
    per = phase["cpu_us_per_msg"]
    return round(sum(per.get(name, 0.0) for name in SERVER_PROCESSES[phase["target"]]), 1)


def spread(values: list[float | None]) -> dict:
    """Median, min and max of the values present."""
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(present), 2), "min": round(min(present), 2),
            "max": round(max(present), 2)}  # fmt: skip
