"""The scale-out level's pure parts: configurations rotated, watchers split, CPU per message, the fixed/shared split."""

import subprocess
import sys

import psutil
import pytest

from bench.phases import watchers_split
from bench.scaleout import CONFIGS, configs_rotated
from bench.scaleout_figures import (
    cores_busy,
    fixed_and_shared,
    phase_cpu_per_work,
    phase_cpu_us,
    process_model,
    summarise,
)
from bench.scaleout_report import markdown
from bench.system import tree_cpu_s


def phase(config: str, round_number: int, cpu: dict[str, float], *, p99: float = 50.0, received: int = 1000) -> dict:
    """A phase as `bench.phases.measure` returns it, 4,000 messages published in a 10 s window."""
    return {"config": config, "round": round_number, "offered_msgs_per_s": 400.0, "load_avg_1m": [2.0, 2.5],
            "deliveries": {"expected": 1000, "received": received, "lost": 1000 - received, "p50_ms": p99 / 2,
                           "p99_ms": p99},
            "generator": {"published": 4000, "cpu_s": 0.4}, "watchers_cpu_s": 0.8, "window_s": 10.0,
            "cpu_us_per_msg": cpu,
            "resources": {name: {"cpu_s": us * 4000 / 1e6} for name, us in cpu.items()}}  # fmt: skip


def test_every_configuration_leads_one_round_and_each_round_has_all_four():
    assert [configs_rotated(n)[0] for n in range(4)] == list(CONFIGS)
    assert all(sorted(configs_rotated(n)) == sorted(CONFIGS) for n in range(5))


def test_watchers_are_split_evenly_between_the_daphne_processes_each_client_with_its_own_cookie():
    subscriptions = [[f"P{c}"] for c in range(5)]
    cookies = [f"cookie-{c}" for c in range(8)]
    parts = watchers_split(subscriptions, cookies, ["http://a", "http://b"])
    assert [part["url"] for part in parts] == ["http://a", "http://b"]
    assert parts[0]["subscriptions"] == [["P0"], ["P2"], ["P4"]] and parts[1]["subscriptions"] == [["P1"], ["P3"]]
    assert parts[0]["cookies"] == ["cookie-0", "cookie-2", "cookie-4"] and parts[1]["cookies"] == [
        "cookie-1",
        "cookie-3",
    ]
    alone = watchers_split(subscriptions, cookies, ["http://a"])
    assert alone[0]["subscriptions"] == subscriptions and alone[0]["cookies"] == cookies[:5]


def test_cpu_per_message_adds_the_harness_and_sums_each_kind():
    per = phase_cpu_us(phase("2D+2B", 0, {"daphne-1": 300.0, "daphne-2": 250.0, "bridge-1": 400.0, "bridge-2": 380.0,
                                          "postgres": 500.0, "redis": 5.0, "broker": 80.0}))  # fmt: skip
    assert per["generator"] == 100.0 and per["watchers"] == 200.0
    assert per["daphne (all)"] == 550.0 and per["bridge (all)"] == 780.0
    assert per["servers"] == 550.0 + 780.0 + 500.0 + 5.0 + 80.0, "the harness is not a server"


def test_cpu_per_unit_of_work_divides_by_what_was_applied_and_delivered_in_the_window():
    measured = phase("2D+2B", 0, {"daphne-1": 300.0, "daphne-2": 200.0, "bridge-1": 500.0, "bridge-2": 500.0,
                                  "postgres": 600.0})  # fmt: skip
    measured.update(applied=2000, arrived_by_watchers=[4000, 2000])  # CPU s: daphne 1.2 and 0.8, bridges 4, pg 2.4
    assert phase_cpu_per_work(measured) == {"bridges per applied": 2000.0, "postgres per applied": 1200.0,
                                            "daphne-1 per delivery": 300.0, "daphne-2 per delivery": 400.0}  # fmt: skip
    assert phase_cpu_per_work(phase("1D+1B", 0, {"daphne-1": 1.0})) == {}, "no counts, no figures"


def test_cores_busy_counts_every_measured_process_over_the_window():
    measured = phase("1D+1B", 0, {"daphne-1": 1000.0, "bridge-1": 1500.0})
    assert cores_busy(measured) == pytest.approx((4.0 + 6.0 + 0.4 + 0.8) / 10.0)


def test_two_processes_of_a_kind_split_into_what_each_pays_and_what_they_share():
    # one Daphne: 100 reading the log + 600 delivering; each of two: 100 + 300
    assert fixed_and_shared(700.0, 400.0) == {"per_process": 100.0, "shared": 600.0}
    assert fixed_and_shared(None, 400.0) is None


def test_summary_gives_medians_and_ranges_per_configuration_and_the_model_from_them():
    phases = []
    for number in range(3):
        phases.append(phase("1D+1B", number, {"daphne-1": 700.0 + number, "bridge-1": 1000.0, "postgres": 600.0}))
        phases.append(phase("2D+1B", number, {"daphne-1": 400.0, "daphne-2": 400.0, "bridge-1": 1000.0,
                                              "postgres": 650.0}))  # fmt: skip
        phases.append(phase("1D+2B", number, {"daphne-1": 700.0, "bridge-1": 600.0, "bridge-2": 600.0,
                                              "postgres": 620.0}, received=900 + number))  # fmt: skip
    summary = summarise(phases)
    figures = summary["400"]
    assert list(figures) == ["1D+1B", "2D+1B", "1D+2B"]
    assert figures["1D+1B"]["cpu_us_per_msg"]["daphne-1"] == {"median": 701.0, "min": 700.0, "max": 702.0}
    assert figures["1D+2B"]["lost"] == {"median": 99, "min": 98, "max": 100}
    model = process_model(summary)["400"]
    assert model["daphne"] == {"per_process": 99.0, "shared": 602.0}
    assert model["bridge"] == {"per_process": 200.0, "shared": 800.0}
    assert model["postgres"] == {"1D+1B": 600.0, "2D+1B": 650.0, "1D+2B": 620.0}
    text = markdown({"when": "now", "machine": "test", "load_avg_1m_before": 1.0, "clients": 100, "per_client": 20,
                     "summary": summary, "model": process_model(summary)})  # fmt: skip
    assert "| 400 | 1D+2B | 3 | 901 (900–902) (1000) | 99 (98–100) |" in text
    assert "400 msg/s, bridge: 200.0 µs/msg paid by every process, 800.0 µs/msg split between them" in text


def test_a_process_tree_counts_the_cpu_of_a_child_that_already_ended():
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    script = "import subprocess, sys\nsubprocess.run([sys.executable, '-c', sys.argv[1]])\nprint('done', flush=True)\n"
    parent = subprocess.Popen([sys.executable, "-c", script + "sys.stdin.read()", burn], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert parent.stdout.readline().strip() == "done"
        process = psutil.Process(parent.pid)
        own = process.cpu_times().user + process.cpu_times().system
        assert not process.children()
        assert tree_cpu_s(process) >= own + 0.25, "the ended child's CPU is counted through its parent"
    finally:
        parent.stdin.close()
        parent.wait(timeout=10)
