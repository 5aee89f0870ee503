"""The ingest comparison's pure parts: the generator's schedule, the bare subscriber's rows, ratios, own time."""

import json

from bench.bare_ingest import message_row
from bench.ingest import intended_at, order
from bench.ingest_report import own_time, summarise, targets_against_issue


def test_intended_at_follows_the_generators_schedule_and_seq_base():
    start_at = 1_000.25  # the generator's first seq is floor(start_at * 10) = 10,002
    assert intended_at(start_at=start_at, rate_hz=1.0, index=0, count=400, seq=10_002) == start_at
    assert intended_at(start_at=start_at, rate_hz=1.0, index=200, count=400, seq=10_004) == start_at + 2.5
    assert intended_at(start_at=start_at, rate_hz=2.0, index=100, count=400, seq=10_003) == start_at + 0.625


def test_targets_alternate_by_round_and_rate():
    present = {"bridge": 1, "bare": 2}
    assert order(0, 0, present) == ["bare", "bridge"]
    assert order(1, 0, present) == order(0, 1, present) == ["bridge", "bare"]
    assert order(1, 1, present) == ["bare", "bridge"]
    assert [order(n, 0, {**present, "before": 3})[0] for n in range(3)] == ["bare", "bridge", "before"]


def test_message_row_decodes_progress_and_skips_what_is_not_a_json_object():
    body = {"seq": 7, "bootId": "b", "intendedAt": 12.5, "deliveredVolumeMl": 1.5, "volumeRemainingMl": 498.5,
            "progressPercent": 0.3, "status": "running"}  # fmt: skip
    payload = json.dumps(body).encode()
    assert message_row("devices/P1/progress", payload, 99.0) == (
        "P1", "progress", "b", 7, 12.5, 1.5, 498.5, 0.3, "running", 99.0)  # fmt: skip
    assert message_row("devices/P1/progress", b"{not json", 1.0) is None
    assert message_row("devices/P1/progress", b"[1, 2]", 1.0) is None
    assert message_row("devices/P1", payload, 1.0) is None


def phase(target: str, round_number: int, cpu: float, *, lost: int = 0, p99: float = 20.0) -> dict:
    return {"target": target, "rate": 2000, "round": round_number, "published": 1000, "lost": lost,
            "cpu_us_per_msg": {"subscriber": cpu, "broker": 50.0}, "commit_lag": {"p50_ms": 5.0, "p99_ms": p99},
            "load_avg_1m": [1.0, 1.0]}  # fmt: skip


def test_ratio_pairs_rounds_and_the_target_needs_every_round_within_2x():
    phases = [phase("bare", n, 100.0) for n in range(3)]
    phases += [phase("bridge", 0, 150.0), phase("bridge", 1, 190.0), phase("bridge", 2, 210.0)]
    ratio = summarise(phases)["2000"]["ratios"]["bridge"]
    assert ratio["per_round"] == {"median": 1.9, "min": 1.5, "max": 2.1}
    assert ratio["of_medians"] == 1.9 and ratio["bridge_minus_bare_us"] == 90.0
    lines = targets_against_issue(summarise(phases))
    assert "NOT met" in lines[0]
    assert lines[1].endswith(": met")


def test_sustained_rate_fails_on_any_loss_or_a_late_p99():
    phases = [phase("bare", 0, 100.0), phase("bridge", 0, 120.0, lost=1)]
    assert targets_against_issue(summarise(phases))[1].endswith("NOT met")
    phases = [phase("bare", 0, 100.0), phase("bridge", 0, 120.0, p99=101.0)]
    lines = targets_against_issue(summarise(phases))
    assert lines[0].endswith(": met") and lines[1].endswith("NOT met")


def test_own_time_counts_the_innermost_frame_without_line_numbers():
    lines = [
        "Thread 0x1 (active);run (worker.py:10);commit (commit.py:20);execute (base.py:5) 7",
        "Thread 0x1 (active);run (worker.py:10);execute (base.py:9) 3",
        "Thread 0x2 (active);loop (client.py:1);_packet_read (client.py:44) 4",
        "garbage",
    ]
    assert own_time(lines) == {"execute (base.py)": 10, "_packet_read (client.py)": 4}
