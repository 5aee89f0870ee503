"""The shipped alert rules parse and name only metrics that /metrics really exposes."""

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from devices.services.records import bridge_heartbeat
from realtime import metrics as bridge_metrics
from realtime.fanout import FanOut
from realtime.server_metrics import ChangeNotifyCollector, FanOutCollector

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
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
    notify_collector = ChangeNotifyCollector(lambda: True)  # and on PostgreSQL, its listener's (sio.server.bind)
    REGISTRY.register(fanout_collector)
    REGISTRY.register(notify_collector)
    try:
        body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests").content.decode()
    finally:
        REGISTRY.unregister(fanout_collector)
        REGISTRY.unregister(notify_collector)
    samples = {line.split("{")[0].split()[0] for line in body.splitlines() if line and not line.startswith("#")}
    families = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    exposed = samples | families
    missing = rule_metric_names() - exposed
    assert not missing, f"alert rules name metrics /metrics does not expose: {sorted(missing)}"


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_an_alert_fires_when_prometheus_cannot_read_the_metrics():
    """Review 34: every rule was over a PumpStream series, absent when the scrape fails (Daphne down or given up by
    systemd, 401 for want of METRICS_TOKEN, nginx's 403), and a rule over an absent series never fires."""
    expressions = {rule["alert"]: rule["expr"] for rule in rules()}
    assert re.fullmatch(r'up\{job="pumpstream"\} == 0', expressions.get("PumpStreamScrapeFailing", "")), expressions
    assert expressions.get("PumpStreamMetricsAbsent", "").startswith("absent(pumpstream_"), expressions


def test_the_documented_scrape_reads_each_daphne_on_loopback_not_whichever_nginx_picks():
    """Review 34: the documented target was the site's name, through nginx's `least_conn` upstream, so each scrape was
    whichever Daphne nginx picked (8 scrapes, 2 processes): per-process series alternated under one target. The scrape
    config in docs/operations.md names each upstream server of deploy/nginx/pumpstream.conf, the job the rules read."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    config = yaml.safe_load(re.search(r"```yaml\n(scrape_configs:.*?)```", operations, re.S).group(1))
    job = config["scrape_configs"][0]
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    upstream = re.search(
        r"upstream pumpstream_web \{(.*?)\}", (ROOT / "deploy/nginx/pumpstream.conf").read_text(), re.S
    )
    servers = set(re.findall(r"server (127\.0\.0\.1:\d+)", upstream.group(1)))
    assert job["job_name"] == "pumpstream" and servers and targets == servers, (job, servers)


def test_env_example_names_the_metrics_token():
    """Review 34: an operator copying .env.example got a /metrics that answers 401 to Prometheus, nowhere said."""
    assert re.search(r"^METRICS_TOKEN=$", (ROOT / ".env.example").read_text(), re.M)
