"""Production settings refuse to start without secrets and pass `check --deploy`."""

import subprocess
import sys

from tests.support.processes import ROOT

PRODUCTION = {"DJANGO_DEBUG": "false", "PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:////tmp/ps-deploy.sqlite3"}
REAL_SECRETS = {"DJANGO_SECRET_KEY": "k" * 20 + "-not-a-real-secret-but-long-enough-" + "x" * 20,
                "BRIDGE_INTERNAL_SECRET": "b" * 40}  # fmt: skip


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_refuses_to_start_without_secret_key():
    result = manage("check", env=PRODUCTION)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_bridge_secret():
    result = manage("check", env={**PRODUCTION, "DJANGO_SECRET_KEY": REAL_SECRETS["DJANGO_SECRET_KEY"]})
    assert result.returncode != 0
    assert "BRIDGE_INTERNAL_SECRET" in result.stderr


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, **REAL_SECRETS})
    assert result.returncode == 0, result.stdout + result.stderr


def test_mqtt_url_and_hivemq_variables(monkeypatch):
    import environ

    from pumpstream.mqtt_config import mqtt_settings_from_env

    monkeypatch.setenv("MQTT_URL", "mqtts://user:p%40ss@broker.example:8883")
    broker = mqtt_settings_from_env(environ.Env())
    assert (broker["HOST"], broker["PORT"], broker["USERNAME"], broker["PASSWORD"], broker["TLS"]) == (
        "broker.example", 8883, "user", "p@ss", True)  # fmt: skip
    monkeypatch.delenv("MQTT_URL")
    monkeypatch.setenv("HIVEMQ_HOST", "cluster.hivemq.example")
    monkeypatch.setenv("HIVEMQ_PORT", "8883")
    monkeypatch.setenv("HIVEMQ_USERNAME", "pump")
    broker = mqtt_settings_from_env(environ.Env())
    assert broker["HOST"] == "cluster.hivemq.example" and broker["TLS"] is True and broker["USERNAME"] == "pump"
