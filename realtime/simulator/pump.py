"""A simulated pump's infusion arithmetic and state, free of I/O: the bolus is part of the planned volume."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

BOLUS_RATE_ML_MIN = 90.0  # the original pushes a 5 mL bolus in about 3.2 s
DONE_EPSILON_ML = 1e-9


class PumpPhase(StrEnum):
    """What the simulated pump is doing."""

    IDLE = "idle"
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # the confirm screen after START_INFUSION
    RUNNING = "running"
    PAUSED = "paused"


class OrderError(ValueError):
    """A START_INFUSION payload the pump cannot run."""


@dataclass(frozen=True)
class Order:
    """A START_INFUSION order in the wire's units (mL/min, mL, min)."""

    flow_rate_ml_min: float
    planned_volume_ml: float
    planned_time_min: float
    bolus_enabled: bool = False
    bolus_volume_ml: float = 0.0
    infusion_id: str = ""

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Order":
        """Read a START_INFUSION payload; raises OrderError naming what is wrong."""
        try:
            bolus = payload.get("bolus") or {}
            order = cls(
                flow_rate_ml_min=float(payload["flowRateMlMin"]),
                planned_volume_ml=float(payload["plannedVolumeMl"]),
                planned_time_min=float(payload["plannedTimeMin"]),
                bolus_enabled=bool(bolus.get("enabled", False)),
                bolus_volume_ml=float(bolus.get("volumeMl") or 0.0),
                infusion_id=str(payload.get("infusionId", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise OrderError(f"unreadable order: {exc!r}") from exc
        if order.flow_rate_ml_min <= 0 or order.planned_volume_ml <= 0:
            raise OrderError("rate and volume must be positive")
        if order.bolus_ml > order.planned_volume_ml:
            raise OrderError("bolus larger than the planned volume")
        return order

    @property
    def bolus_ml(self) -> float:
        """The bolus actually given: zero when disabled."""
        return self.bolus_volume_ml if self.bolus_enabled else 0.0

    def read_back(self) -> dict[str, Any]:
        """The parameters the pump confirms, as the contract names them."""
        return {
            "flowRateMlMin": self.flow_rate_ml_min,
            "plannedVolumeMl": self.planned_volume_ml,
            "plannedTimeMin": self.planned_time_min,
            "bolusEnabled": self.bolus_enabled,
            "bolusVolumeMl": self.bolus_volume_ml if self.bolus_enabled else 0.0,
        }


@dataclass
class Infusion:
    """One running infusion: delivered volume grows with pump time; the bolus is given first."""

    order: Order
    bolus_delivered_ml: float = 0.0
    normal_delivered_ml: float = 0.0
    elapsed_min: float = 0.0  # pumping time; paused time does not count
    bolus_reported: bool = field(default=False)

    @property
    def delivered_ml(self) -> float:
        """Everything delivered so far, bolus included, never more than planned."""
        return self.bolus_delivered_ml + self.normal_delivered_ml

    @property
    def remaining_ml(self) -> float:
        """What is left of the planned volume."""
        return max(self.order.planned_volume_ml - self.delivered_ml, 0.0)

    @property
    def bolus_done(self) -> bool:
        """Whether the whole bolus has been pushed."""
        return self.bolus_delivered_ml >= self.order.bolus_ml - DONE_EPSILON_ML

    @property
    def done(self) -> bool:
        """Whether the planned volume has been delivered."""
        return self.remaining_ml <= DONE_EPSILON_ML

    def advance(self, minutes: float) -> None:
        """Pump for `minutes` of simulated time: bolus first at the bolus rate, then the ordered rate."""
        while minutes > 0 and not self.done:
            if not self.bolus_done:
                rate = BOLUS_RATE_ML_MIN
                step = min(minutes, (self.order.bolus_ml - self.bolus_delivered_ml) / rate)
                self.bolus_delivered_ml = min(self.bolus_delivered_ml + rate * step, self.order.bolus_ml)
            else:
                rate = self.order.flow_rate_ml_min
                step = min(minutes, self.remaining_ml / rate)
                self.normal_delivered_ml = min(
                    self.normal_delivered_ml + rate * step, self.order.planned_volume_ml - self.bolus_delivered_ml
                )
            self.elapsed_min += step
            minutes -= step
            if step <= 0:
                break

    def finish(self) -> None:
        """Deliver the rest now, as if the pump had run to the end."""
        self.advance(self.time_remaining_min + 1.0)

    @property
    def time_remaining_min(self) -> float:
        """Pumping time left: the rest of the bolus at the bolus rate, then the rest at the ordered rate."""
        bolus_left = max(self.order.bolus_ml - self.bolus_delivered_ml, 0.0)
        normal_left = max(self.remaining_ml - bolus_left, 0.0)
        return bolus_left / BOLUS_RATE_ML_MIN + normal_left / self.order.flow_rate_ml_min

    @property
    def progress_percent(self) -> float:
        """Share of the planned volume delivered, 0–100."""
        return min(100.0, 100.0 * self.delivered_ml / self.order.planned_volume_ml)

    def progress_fields(self) -> dict[str, float]:
        """The contract's progress numbers, rounded as a pump's display would."""
        return {
            "timeRemainingMin": round(self.time_remaining_min, 2),
            "volumeRemainingMl": round(self.remaining_ml, 2),
            "deliveredVolumeMl": round(self.delivered_ml, 2),
            "elapsedTimeMin": round(self.elapsed_min, 2),
            "progressPercent": round(self.progress_percent, 2),
            "flowRate": self.order.flow_rate_ml_min,
        }

    def summary(self) -> dict[str, float]:
        """The completion summary: the bolus is counted once, inside the total."""
        elapsed = self.elapsed_min
        return {
            "totalTimeMin": round(elapsed, 2),
            "totalVolumeMl": round(self.delivered_ml, 2),
            "plannedTimeMin": self.order.planned_time_min,
            "plannedVolumeMl": self.order.planned_volume_ml,
            "avgFlowRate": round(self.delivered_ml / elapsed, 4) if elapsed > 0 else 0.0,
            "efficiency": round(100.0 * self.delivered_ml / self.order.planned_volume_ml, 1),
        }
