"""The scale-out run as Markdown: per rate and configuration, deliveries, latency and CPU per message by process."""

from bench.compare_report import span

PROCESS_COLUMNS = ("daphne-1", "daphne-2", "bridge-1", "bridge-2", "postgres", "redis", "broker", "servers",
                   "generator", "watchers")  # fmt: skip


def deliveries_table(summary: dict) -> list[str]:
    """Per rate and configuration: runs, received / expected, lost, p50, p99, cores busy, load."""
    lines = ["| msg/s | config | runs | received (expected) | lost | p50 ms | p99 ms | cores busy | load 1m |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rate, figures in summary.items():
        for config, f in figures.items():
            lines.append(f"| {rate} | {config} | {f['runs']} | {span(f['received'])} ({span(f['expected'])}) | "
                         f"{span(f['lost'])} | {span(f['p50_ms'])} | {span(f['p99_ms'])} | "
                         f"{span(f['cores_busy'])} | {span(f['load_avg_1m'])} |")  # fmt: skip
    return lines


def cpu_table(summary: dict) -> list[str]:
    """Per rate and configuration: µs of CPU per published message of each process, median (range)."""
    lines = ["| msg/s | config | " + " | ".join(PROCESS_COLUMNS) + " |", "|---|---|" + "---|" * len(PROCESS_COLUMNS)]
    for rate, figures in summary.items():
        for config, f in figures.items():
            cells = [span(f["cpu_us_per_msg"][name]) if name in f["cpu_us_per_msg"] else "" for name in
                     PROCESS_COLUMNS]  # fmt: skip
            lines.append(f"| {rate} | {config} | " + " | ".join(cells) + " |")
    return lines


def work_table(summary: dict) -> list[str]:
    """Per rate and configuration: messages applied in the window, CPU µs per message applied and per delivery."""
    lines = ["| msg/s | config | applied in the window | CPU µs per unit of work |", "|---|---|---|---|"]
    for rate, figures in summary.items():
        for config, f in figures.items():
            cells = ", ".join(f"{name} {span(value)}" for name, value in f.get("cpu_us_per_work", {}).items())
            lines.append(f"| {rate} | {config} | {span(f['applied']) if 'applied' in f else '–'} | {cells} |")
    return lines


def model_lines(model: dict) -> list[str]:
    """What 1 against 2 of a kind says: µs/msg every process of the kind pays, and the part they split."""
    lines = []
    for rate, kinds in model.items():
        for kind in ("daphne", "bridge"):
            parts = kinds.get(kind)
            if parts:
                lines.append(f"{rate} msg/s, {kind}: {parts['per_process']} µs/msg paid by every process, "
                             f"{parts['shared']} µs/msg split between them")  # fmt: skip
        lines.append(f"{rate} msg/s, PostgreSQL µs/msg by configuration: "
                     + ", ".join(f"{config} {value}" for config, value in kinds["postgres"].items()))  # fmt: skip
    return lines


def markdown(result: dict) -> str:
    """The run: deliveries and latency, CPU per message by process, the fixed/shared split."""
    lines = [f"**scaleout** ({result['when']}, {result['machine']}, load before {result['load_avg_1m_before']}; "
             f"{result['clients']} clients x {result['per_client']} pumps, split evenly between the Daphne processes)",
             "", "Deliveries and latency from the intended send time, medians (range) over the rounds:",
             ""]  # fmt: skip
    lines += deliveries_table(result["summary"])
    lines += ["", "CPU µs per published message, by process (PostgreSQL: the postmaster and every backend):", ""]
    lines += cpu_table(result["summary"])
    lines += [
        "",
        "CPU per unit of work done in the window (a backlog's included): per message applied, per delivery:",
        "",
    ]
    lines += work_table(result["summary"])
    lines += ["", *(f"- {line}" for line in model_lines(result["model"]))]
    lines += [f"- round {f['round']} {f['config']} FAILED (load {f['load_avg_1m']}): {f['error']}"
              for f in result.get("failures", [])]  # fmt: skip
    return "\n".join(lines) + "\n"
