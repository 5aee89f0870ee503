"""The pump's arithmetic: the bolus is part of the planned volume, counted once; paused time does not count."""

import pytest

from realtime.simulator.pump import BOLUS_RATE_ML_MIN, Infusion, Order, OrderError

ORDER = Order(flow_rate_ml_min=2.0, planned_volume_ml=30.0, planned_time_min=15.0, bolus_enabled=True,
              bolus_volume_ml=5.0, infusion_id="INF-1")  # fmt: skip


def run_to_end(infusion: Infusion, step_min: float = 0.1) -> None:
    for _ in range(100_000):
        if infusion.done:
            return
        infusion.advance(step_min)
    raise AssertionError("the infusion never finished")


def test_whole_infusion_delivers_exactly_the_planned_volume_with_the_bolus_inside_it():
    infusion = Infusion(ORDER)
    run_to_end(infusion)
    summary = infusion.summary()
    assert summary["totalVolumeMl"] == 30.0, "the bolus must not be added on top of the planned volume"
    assert summary["efficiency"] == 100.0
    expected_minutes = 5.0 / BOLUS_RATE_ML_MIN + 25.0 / 2.0
    assert summary["totalTimeMin"] == pytest.approx(expected_minutes, abs=0.01)


def test_bolus_goes_first_then_the_ordered_rate():
    infusion = Infusion(ORDER)
    infusion.advance(5.0 / BOLUS_RATE_ML_MIN)
    assert infusion.bolus_done and infusion.delivered_ml == pytest.approx(5.0)
    infusion.advance(1.0)
    assert infusion.delivered_ml == pytest.approx(7.0), "after the bolus the pump runs at 2 mL/min"
    fields = infusion.progress_fields()
    assert fields["volumeRemainingMl"] == pytest.approx(23.0)
    assert fields["timeRemainingMin"] == pytest.approx(11.5)
    assert fields["progressPercent"] == pytest.approx(100 * 7 / 30, abs=0.01)


def test_without_bolus_time_matches_the_order_and_progress_never_passes_100():
    order = Order(flow_rate_ml_min=1.0, planned_volume_ml=20.0, planned_time_min=20.0)
    infusion = Infusion(order)
    infusion.advance(25.0)
    assert infusion.done and infusion.delivered_ml == pytest.approx(20.0)
    assert infusion.elapsed_min == pytest.approx(20.0), "time stops counting once the volume is delivered"
    assert infusion.progress_fields()["progressPercent"] == 100.0


def test_a_disabled_bolus_reads_back_as_zero():
    order = Order.from_payload({"infusionId": "X", "flowRateMlMin": 1, "plannedVolumeMl": 10, "plannedTimeMin": 10,
                                "bolus": {"enabled": False, "volumeMl": 3}})  # fmt: skip
    assert order.bolus_ml == 0.0 and order.read_back()["bolusVolumeMl"] == 0.0


@pytest.mark.parametrize(
    "payload",
    [{}, {"flowRateMlMin": "fast", "plannedVolumeMl": 1, "plannedTimeMin": 1},
     {"flowRateMlMin": 0, "plannedVolumeMl": 1, "plannedTimeMin": 1},
     {"flowRateMlMin": 1, "plannedVolumeMl": 1, "plannedTimeMin": 1, "bolus": {"enabled": True, "volumeMl": 5}}],
)  # fmt: skip
def test_unrunnable_orders_are_refused(payload):
    with pytest.raises(OrderError):
        Order.from_payload(payload)
