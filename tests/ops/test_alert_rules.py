"""The shipped alert rules parse and name only metrics that /metrics really exposes."""

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from devices.services.records import bridge_heartbeat
from realtime import metrics as bridge_metrics
from realtime.fanout import FanOut
from realtime.server_metrics import FanOutCollector

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
METRIC_NAME = re.compile(r"\bpumpstream_[a-z_]+\b")


def rule_metric_names() -> set[str]:
    document = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules and all({"alert", "expr", "annotations"} <= rule.keys() for rule in rules)
    return {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])}


@pytest.mark.django_db
def test_alert_rules_name_metrics_that_exist(client, settings):
    settings.METRICS_TOKEN = "scrape-token-for-tests"
    bridge_metrics.COMMANDS_PUBLISHED.labels("sent").inc(0)
    bridge_heartbeat(broker_connected=True, stats={"metrics": bridge_metrics.registry_snapshot()})
    fanout_collector = FanOutCollector(FanOut().backlog)  # Daphne's start-up registers it (sio.server.install)
    REGISTRY.register(fanout_collector)
    try:
        body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests").content.decode()
    finally:
        REGISTRY.unregister(fanout_collector)
    samples = {line.split("{")[0].split()[0] for line in body.splitlines() if line and not line.startswith("#")}
    families = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    exposed = samples | families
    missing = rule_metric_names() - exposed
    assert not missing, f"alert rules name metrics /metrics does not expose: {sorted(missing)}"
