"""The benchmark report's arithmetic: how busy the harness and the system kept the machine."""

from bench.report import cores_busy


def phase(**overrides) -> dict:
    return {"window_s": 20.0, "generator": {"cpu_s": 4.0}, "watchers_cpu_s": 6.0,
            "resources": {"broker": {"cpu_s": 2.0}, "bridge": {"cpu_s": 10.0}, "daphne": {"cpu_s": 5.0}},
            **overrides}  # fmt: skip


def test_cores_busy_splits_the_harness_from_pumpstream():
    assert cores_busy(phase()) == "0.60 / 0.75"


def test_a_floor_phase_has_no_pumpstream_share():
    assert cores_busy(phase(resources={"broker": {"cpu_s": 2.0}})) == "0.60 / –"


def test_results_recorded_before_the_window_was_say_nothing():
    assert cores_busy(phase(window_s=None)) is None
