"""The scale-out run's figures: per configuration medians and ranges, CPU per message of every process, and what
one and two processes of a kind say about N of them (a part each process pays for every message, a part shared).
"""

from bench.figures import spread

SERVERS = ("daphne", "bridge", "postgres", "redis", "broker")


def phase_cpu_us(phase: dict) -> dict[str, float]:
    """µs of CPU per published message of each process of a phase, the harness's too, and the sums by kind."""
    per = dict(phase["cpu_us_per_msg"])
    published = max(phase["generator"]["published"], 1)
    per["generator"] = round(phase["generator"]["cpu_s"] * 1e6 / published, 1)
    per["watchers"] = round(phase["watchers_cpu_s"] * 1e6 / published, 1)
    for kind in ("daphne", "bridge"):
        per[f"{kind} (all)"] = round(sum(value for name, value in per.items() if name.startswith(f"{kind}-")), 1)
    per["servers"] = round(sum(per.get(f"{kind} (all)", per.get(kind, 0.0)) for kind in SERVERS), 1)
    return per


def phase_cpu_per_work(phase: dict) -> dict[str, float]:
    """µs of CPU per unit of work done in the window, a backlog's included (robust when a system falls behind):
    each bridge's and PostgreSQL's per message applied (receipts committed), each Daphne's per report delivered
    to its watchers (every arrival, however late)."""
    cpu = {name: usage["cpu_s"] * 1e6 for name, usage in phase["resources"].items()}
    per: dict[str, float] = {}
    applied = phase.get("applied")
    if applied:
        bridges = sum(value for name, value in cpu.items() if name.startswith("bridge-"))
        per["bridges per applied"] = round(bridges / applied, 1)
        if "postgres" in cpu:
            per["postgres per applied"] = round(cpu["postgres"] / applied, 1)
    for number, arrived in enumerate(phase.get("arrived_by_watchers") or [], start=1):
        if arrived and f"daphne-{number}" in cpu:
            per[f"daphne-{number} per delivery"] = round(cpu[f"daphne-{number}"] / arrived, 1)
    return per


def cores_busy(phase: dict) -> float:
    """CPU seconds of every measured process (servers, generator, watchers) per second of the window."""
    total = sum(usage["cpu_s"] for usage in phase["resources"].values())
    total += phase["generator"]["cpu_s"] + phase["watchers_cpu_s"]
    return round(total / max(phase["window_s"], 1e-9), 2)


def summarise(phases: list[dict]) -> dict:
    """{rate: {configuration: figures}}: delivered, loss, latency, CPU µs/msg per process, cores busy, load."""
    summary: dict = {}
    for rate in sorted({phase["offered_msgs_per_s"] for phase in phases}):
        at_rate = [phase for phase in phases if phase["offered_msgs_per_s"] == rate]
        figures = {}
        for config in dict.fromkeys(phase["config"] for phase in at_rate):
            mine = [phase for phase in at_rate if phase["config"] == config]
            cpu = [phase_cpu_us(phase) for phase in mine]
            names = list(dict.fromkeys(name for per in cpu for name in per))
            figures[config] = {
                "runs": len(mine),
                "expected": spread([phase["deliveries"]["expected"] for phase in mine]),
                "received": spread([phase["deliveries"]["received"] for phase in mine]),
                "lost": spread([phase["deliveries"]["lost"] for phase in mine]),
                "p50_ms": spread([phase["deliveries"]["p50_ms"] for phase in mine]),
                "p99_ms": spread([phase["deliveries"]["p99_ms"] for phase in mine]),
                "cpu_us_per_msg": {name: spread([per.get(name) for per in cpu]) for name in names},
                "applied": spread([phase.get("applied") for phase in mine]),
                "cpu_us_per_work": _spreads([phase_cpu_per_work(phase) for phase in mine]),
                "cores_busy": spread([cores_busy(phase) for phase in mine]),
                "load_avg_1m": spread([phase["load_avg_1m"][0] for phase in mine]),
            }
        summary[str(int(rate))] = figures
    return summary


def _spreads(dicts: list[dict[str, float]]) -> dict[str, dict]:
    names = list(dict.fromkeys(name for each in dicts for name in each))
    return {name: spread([each.get(name) for each in dicts]) for name in names}


def fixed_and_shared(one: float | None, each_of_two: float | None) -> dict | None:
    """One process of a kind costs f + s per message, each of two costs f + s/2, where f is what every process
    pays for every message (a Daphne reading the whole log, a bridge's slot session receiving every message)
    and s the work they split: f = 2 x each - one, s = 2 x (one - each). None without both figures."""
    if one is None or each_of_two is None:
        return None
    return {"per_process": round(2 * each_of_two - one, 1), "shared": round(2 * (one - each_of_two), 1)}


def process_model(summary: dict) -> dict:
    """Per rate: Daphne's and the bridge's fixed and shared µs/msg from 1 against 2 of them (the other kind at 1),
    from the medians; PostgreSQL's and the whole servers' µs/msg in each configuration for comparison."""
    model = {}
    for rate, figures in summary.items():
        one, two_daphne, two_bridge = figures.get("1D+1B"), figures.get("2D+1B"), figures.get("1D+2B")
        if not one:
            continue

        def median(config: dict | None, name: str) -> float | None:
            return config["cpu_us_per_msg"].get(name, {}).get("median") if config else None

        def each(config: dict | None, kind: str) -> float | None:
            total = median(config, f"{kind} (all)")
            return round(total / 2, 1) if total is not None else None

        model[rate] = {
            "daphne": fixed_and_shared(median(one, "daphne (all)"), each(two_daphne, "daphne")),
            "bridge": fixed_and_shared(median(one, "bridge (all)"), each(two_bridge, "bridge")),
            "postgres": {config: median(figures.get(config), "postgres") for config in figures},
            "servers": {config: median(figures.get(config), "servers") for config in figures},
        }
    return model
