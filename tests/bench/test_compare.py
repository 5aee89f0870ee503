"""The comparison run's figures: targets rotated per round, medians and ranges, PumpStream's ratios."""

import pytest

from bench import phases
from bench.compare import summarise, targets_against_issue
from bench.figures import rotated, spread


def phase(target: str, round_number: int, p99: float, cpu: dict[str, float]) -> dict:
    return {"target": target, "round": round_number, "offered_msgs_per_s": 400.0, "load_avg_1m": [1.0, 1.0],
            "deliveries": {"p50_ms": p99 / 2, "p99_ms": p99, "lost": 0}, "cpu_us_per_msg": cpu,
            "generator": {"cpu_share": 0.05}}  # fmt: skip


def test_every_target_leads_one_round_in_three():
    present = {"pumpstream": 0, "bare": 0, "node": 0}
    assert [rotated(n, present)[0] for n in range(3)] == ["node", "bare", "pumpstream"]
    assert sorted(rotated(1, present)) == ["bare", "node", "pumpstream"]


def test_spread_ignores_missing_values():
    assert spread([3, None, 1, 2]) == {"median": 2, "min": 1, "max": 3}
    assert spread([None]) == {"median": None, "min": None, "max": None}


def test_ratios_use_the_server_processes_only_and_pair_rounds():
    phases = [phase("bare", n, 6.0, {"relay": 700.0, "broker": 100.0}) for n in range(3)]
    phases += [phase("node", n, 2.0, {"relay": 200.0, "broker": 100.0}) for n in range(3)]
    phases += [phase("pumpstream", n, 8.0 + n, {"daphne": 1000.0, "bridge": 400.0 + 100 * n, "broker": 100.0})
               for n in range(3)]  # fmt: skip
    figures = summarise(phases)["400"]
    assert figures["pumpstream"]["cpu_us_per_msg"] == {"median": 1500.0, "min": 1400.0, "max": 1600.0}
    assert figures["ratios"]["bare"]["cpu_per_msg"] == round(1500 / 700, 2)
    assert figures["ratios"]["bare"]["p99_minus_ms"] == 3.0
    assert figures["ratios"]["node"]["p99"] == 4.5
    lines = targets_against_issue(summarise(phases))
    assert "NOT met" in lines[0] and lines[1].endswith(": met")


def test_a_checkout_without_the_node_packages_stops_before_any_phase(monkeypatch, tmp_path):
    monkeypatch.setattr(phases, "ROOT", tmp_path)
    (tmp_path / "node_modules" / "mqtt").mkdir(parents=True)
    with pytest.raises(SystemExit, match="lacks socket.io, socket.io-client"):
        phases.node_packages_ready()
    for name in ("socket.io", "socket.io-client"):
        (tmp_path / "node_modules" / name).mkdir()
    phases.node_packages_ready()
