"""Production is the default: settings refuse to start without secrets, pass `check --deploy`, and ship none."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from pumpstream.devenv import development_secrets_ensure
from tests.support.processes import ROOT

# DJANGO_DEBUG unset: production. DJANGO_ENV_FILE keeps this install's development .env out of it.
PRODUCTION = {
    "PATH": "/usr/bin:/bin",
    "DATABASE_URL": "sqlite:////tmp/ps-deploy.sqlite3",
    "DJANGO_ENV_FILE": "/nonexistent",
}
REAL_SECRETS = {"DJANGO_SECRET_KEY": "k" * 20 + "-not-a-real-secret-but-long-enough-" + "x" * 20,
                "BRIDGE_INTERNAL_SECRET": "b" * 40}  # fmt: skip


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_unset_debug_is_production_and_refuses_to_start_without_secret_key():
    result = manage("check", env=PRODUCTION)
    assert result.returncode != 0, "with DJANGO_DEBUG unset and no secrets the settings started anyway"
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_explicit_production_refuses_to_start_without_secret_key():
    result = manage("check", env={**PRODUCTION, "DJANGO_DEBUG": "false"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_bridge_secret():
    result = manage("check", env={**PRODUCTION, "DJANGO_SECRET_KEY": REAL_SECRETS["DJANGO_SECRET_KEY"]})
    assert result.returncode != 0
    assert "BRIDGE_INTERNAL_SECRET" in result.stderr


def test_production_refuses_a_redis_url_without_a_password():
    result = manage("check", env={**PRODUCTION, **REAL_SECRETS, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert result.returncode != 0, "production started with a Redis that anyone on its network could publish to"
    assert "REDIS_URL must carry the Redis password" in result.stderr
    with_password = {**PRODUCTION, **REAL_SECRETS, "REDIS_URL": "redis://:a-long-redis-password@127.0.0.1:6379/0"}
    assert manage("check", env=with_password).returncode == 0


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, **REAL_SECRETS})
    assert result.returncode == 0, result.stdout + result.stderr


def test_development_generates_its_own_secrets_into_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    development = {**PRODUCTION, "DJANGO_DEBUG": "true", "DJANGO_ENV_FILE": str(env_file)}
    result = manage("check", env=development)
    assert result.returncode == 0, result.stderr
    text = env_file.read_text()
    assert re.search(r"^DJANGO_SECRET_KEY=\S{50,}$", text, re.M) and re.search(
        r"^BRIDGE_INTERNAL_SECRET=\S{32,}", text, re.M
    )
    assert development_secrets_ensure(env_file=env_file) == [], "secrets were generated again for the same install"
    assert env_file.stat().st_mode & 0o077 == 0, ".env with secrets is readable by others"


def test_each_install_gets_its_own_secrets_and_the_old_published_ones_are_refused(tmp_path):
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    development_secrets_ensure(env_file=first)
    development_secrets_ensure(env_file=second)
    assert first.read_text() != second.read_text(), "two installs got the same development secrets"
    published = {"DJANGO_SECRET_KEY": "django-insecure-development-only-key" + "x" * 20,
                 "BRIDGE_INTERNAL_SECRET": "insecure-dev-bridge-secret" + "x" * 20}  # fmt: skip
    result = manage("check", env={**PRODUCTION, "DJANGO_DEBUG": "true", **published})
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr, "a published secret was accepted"


def test_seed_demo_refuses_in_production():
    with override_settings(DEVELOPMENT=False), pytest.raises(CommandError, match="development only"):
        call_command("seed_demo")


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


def test_production_refuses_to_start_beside_the_development_env_file_setup_wrote():
    """`scripts/setup.sh` (the documented install, docs/deploy.md) writes development secrets into the checkout's
    `.env`; production read it whatever DJANGO_DEBUG said, so a unit that forgot its secrets started on them instead
    of refusing (review 15). Production now reads a file only when DJANGO_ENV_FILE names it."""
    if not (ROOT / ".env").is_file():
        pytest.skip("no .env in the checkout: scripts/setup.sh (make test's setup) writes one")
    production = {name: value for name, value in PRODUCTION.items() if name != "DJANGO_ENV_FILE"}
    result = manage("check", env=production)  # no DJANGO_DEBUG, no secret: as a unit that forgot them
    assert result.returncode != 0, "production started on the development secrets in the checkout's .env"
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_an_env_file_cannot_switch_production_to_development(tmp_path):
    env_file = tmp_path / "pumpstream.env"
    env_file.write_text("DJANGO_DEBUG=true\n")
    result = manage("check", env={**PRODUCTION, "DJANGO_ENV_FILE": str(env_file)})  # no secret in the environment
    assert result.returncode != 0, "an env file's DJANGO_DEBUG=true turned a production process into development"
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert env_file.read_text() == "DJANGO_DEBUG=true\n", "no development secrets generated into it"


def test_production_reads_the_file_its_environment_names(tmp_path):
    env_file = tmp_path / "pumpstream.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in REAL_SECRETS.items()))
    result = manage("check", env={**PRODUCTION, "DJANGO_ENV_FILE": str(env_file)})
    assert result.returncode == 0, result.stderr[-2000:]


def env_example_assignments() -> dict[str, str]:
    """`.env.example`'s settings as systemd's EnvironmentFile reads them (the units' road, deploy/systemd/): a comment
    only where a line starts with `#` or `;`, the value after `=` with its outer whitespace cut, a comment after it
    kept. (Quotes and backslashes, which systemd also reads, are refused below, so this is all of its reading.)"""
    assignments = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        text = line.strip()
        if text and not text.startswith(("#", ";")):
            name, _, value = text.partition("=")
            assignments[name.strip()] = value.strip()
    return assignments


def env_example_filled(tmp_path) -> Path:
    """`.env.example` copied as an operator would: its two secrets filled in, nothing else changed (but the database's
    file, put in `tmp_path`)."""
    text = (ROOT / ".env.example").read_text()
    for name, value in REAL_SECRETS.items():
        text = re.sub(rf"^{name}=$", f"{name}={value}", text, flags=re.M)
    path = tmp_path / "pumpstream.env"
    path.write_text(text.replace("sqlite:///db.sqlite3", f"sqlite:///{tmp_path}/db.sqlite3"))
    return path


def test_env_example_reads_the_same_through_the_settings_and_systemd(monkeypatch):
    """Review 30: each setting carried its comment after the value, which neither reader strips, so a copy of the
    example as the file DJANGO_ENV_FILE names did not start (`int('5   # wrong passwords ...')`) and read
    `DJANGO_SECURE_SSL_REDIRECT=true   # production only` as false. Each value must be exactly what it documents."""
    import environ

    from pumpstream.settings import env_file_read

    read: dict[str, str] = {}
    monkeypatch.setattr(environ.Env, "ENVIRON", read)  # the settings' own reader, into this dict, not os.environ
    env_file_read(ROOT / ".env.example")
    by_systemd = env_example_assignments()
    carrying = {name: value for name, value in read.items() if re.search(r"#|\s$|^\s|[\"'\\]", value)}
    assert not carrying, f"values carrying a comment, outer blanks, quotes or backslashes: {carrying}"
    assert read == by_systemd, "the settings and systemd's EnvironmentFile read .env.example differently"


def test_env_example_with_its_two_secrets_filled_passes_check_deploy(tmp_path):
    """As the example's header says to use it: a copy named by DJANGO_ENV_FILE, with its secrets filled in."""
    production = {**PRODUCTION, "DJANGO_ENV_FILE": str(env_example_filled(tmp_path))}
    production.pop("DATABASE_URL")  # the file's own
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    names = ["SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "TIME_ZONE", "AXES_FAILURE_LIMIT", "STATION_GROUP"]
    probe = f"from django.conf import settings as s; print(*(getattr(s, name) for name in {names!r}))"
    shown = manage("shell", "--no-imports", "-c", probe, env=production)
    assert shown.stdout.strip() == "True 31536000 Europe/London 5 Ward stations", shown.stdout + shown.stderr[-1500:]


def test_an_env_file_with_a_comment_after_a_value_is_refused_not_read_wrong(tmp_path):
    """An operator's own file written as .env.example once was: refused with the line, not read as `'true  # ...'`
    (false) in silence. A `#` inside a value, or in a quoted one, is the value's."""
    env_file = tmp_path / "pumpstream.env"
    secrets = "".join(f"{name}={value}\n" for name, value in REAL_SECRETS.items())
    env_file.write_text(secrets + "DJANGO_SECURE_SSL_REDIRECT=true        # production only\n")
    result = manage("check", env={**PRODUCTION, "DJANGO_ENV_FILE": str(env_file)})
    assert result.returncode != 0, "a comment after a value was read as part of it"
    assert "line 3: DJANGO_SECURE_SSL_REDIRECT's value 'true        # production only' reads as a comment" in (
        result.stderr
    )
    env_file.write_text(secrets + "STATION_GROUP='Ward #2 stations'\nMQTT_CLIENT_ID=bridge#1\n")
    assert manage("check", env={**PRODUCTION, "DJANGO_ENV_FILE": str(env_file)}).returncode == 0


def test_an_env_file_value_with_a_hash_both_readers_take_whole_starts(tmp_path):
    """`STATION_GROUP=Ward #2 stations`: django-environ and systemd's EnvironmentFile both read 'Ward #2 stations'
    (neither strips a comment after a value), and a '#' joined to the word after it reads as no comment to a person
    either: it starts, read whole (review 31, finding 5: 4b7b898 refused it, a deployment that worked)."""
    env_file = tmp_path / "pumpstream.env"
    secrets = "".join(f"{name}={value}\n" for name, value in REAL_SECRETS.items())
    env_file.write_text(secrets + "STATION_GROUP=Ward #2 stations\n")
    production = {**PRODUCTION, "DJANGO_ENV_FILE": str(env_file)}
    shown = manage("shell", "--no-imports", "-c", "from django.conf import settings; print(settings.STATION_GROUP)",
                   env=production)  # fmt: skip
    assert shown.stdout.strip() == "Ward #2 stations", shown.stdout + shown.stderr[-1500:]


@pytest.mark.parametrize(
    ("line", "shown"),
    [("LOGIN_FAILURE_LIMIT=5 # per username and address", "'5 # per username and address'"),
     ("STATION_GROUP=Ward stations  #wall screens", "'Ward stations  #wall screens'"),
     ("DJANGO_SECURE_SSL_REDIRECT='true'  # production only", "\"'true'  # production only\"")],
)  # fmt: skip
def test_an_env_file_value_that_reads_as_a_comment_after_it_is_refused_saying_what_to_do(tmp_path, line, shown):
    """A blank, '#' and a blank (or two blanks before the '#', or a quoted value before it) read as a comment to a
    person, and as part of the value to both readers: refused, saying the two ways out."""
    env_file = tmp_path / "pumpstream.env"
    secrets = "".join(f"{name}={value}\n" for name, value in REAL_SECRETS.items())
    env_file.write_text(secrets + line + "\n")
    result = manage("check", env={**PRODUCTION, "DJANGO_ENV_FILE": str(env_file)})
    assert result.returncode != 0, f"{line!r} started"
    key = line.split("=")[0]
    assert f"line 3: {key}'s value {shown} reads as a comment after the value" in result.stderr, result.stderr[-800:]
    assert "move the comment to a line of its own, or, if the '#' is part of the value, quote the whole value" in (
        result.stderr
    ), result.stderr[-800:]


def test_a_database_that_accepts_but_never_answers_fails_the_connection_instead_of_hanging_it():
    """Review 41, F1: no `connect_timeout` (nor keepalives, nor `tcp_user_timeout`) on PostgreSQL connections: one to a
    database whose network went silent waited for ever. A listener that accepts and never speaks stands for it."""
    import socket
    import time

    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        env = {**PRODUCTION, **REAL_SECRETS, "DATABASE_URL": f"postgres://user:password@127.0.0.1:{port}/silent",
               "DATABASE_CONNECT_TIMEOUT_S": "2"}  # fmt: skip
        started = time.monotonic()
        try:
            result = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                                     "from django.db import connection; connection.ensure_connection()"],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("connecting to a silent database hung for 60 s: no connect_timeout")
    assert result.returncode != 0 and "OperationalError" in result.stderr, result.stderr[-2000:]
    assert "timeout" in result.stderr.lower(), f"failed, but not for its time-out: {result.stderr[-1000:]}"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("name", "value", "reader"),
    [
        ("HEARTBEAT_TIMEOUT_S", "nan", "float"),  # no pump's silence exceeds it: every pump "Online" for ever
        ("HEARTBEAT_TIMEOUT_S", "1e999", "float"),  # read as 1999 (django-environ drops what is not a digit)
        ("HEARTBEAT_TIMEOUT_S", "10min", "float"),  # read as 10
        ("SESSION_IDLE_TIMEOUT_S", "12h", "int"),  # a traceback naming no variable
        ("DJANGO_SECURE_SSL_REDIRECT", "ture", "bool"),  # read as false, in silence
    ],
)
def test_a_number_or_switch_that_does_not_read_as_one_is_refused_naming_it(monkeypatch, name, value, reader):
    from django.core.exceptions import ImproperlyConfigured

    from pumpstream.env_reader import SettingsEnv

    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=rf"^{name}='{re.escape(value)}' does not read as"):
        getattr(SettingsEnv(), reader)(name, default={"float": 10.0, "int": 5, "bool": True}[reader])


@pytest.mark.parametrize(("value", "read"), [("", 43200), ("  ", 43200), (" 7 ", 7), ("60", 60)])
def test_a_blank_number_is_unset_and_one_with_blanks_around_it_is_read(monkeypatch, value, read):
    """A blank line copied from `.env.example` (`SESSION_IDLE_TIMEOUT_S=`) is its default, as a blank `DJANGO_DEBUG=`
    always was; before, a crash whose traceback named no variable."""
    from pumpstream.env_reader import SettingsEnv

    monkeypatch.setenv("SESSION_IDLE_TIMEOUT_S", value)
    assert SettingsEnv().int("SESSION_IDLE_TIMEOUT_S", default=43200) == read


@pytest.mark.parametrize(("value", "read"), [("", False), ("true", True), ("Off", False), ("1", True), ("no", False)])
def test_a_switch_reads_its_words_and_blank_is_unset(monkeypatch, value, read):
    from pumpstream.env_reader import SettingsEnv

    monkeypatch.setenv("DJANGO_SECURE_SSL_REDIRECT", value)
    assert SettingsEnv().bool("DJANGO_SECURE_SSL_REDIRECT", default=False) is read


def test_production_with_a_mistyped_switch_refuses_to_start_naming_it():
    result = manage("check", env={**PRODUCTION, **REAL_SECRETS, "DJANGO_SECURE_SSL_REDIRECT": "ture"})
    assert result.returncode != 0, "production started with its HTTPS redirect read from 'ture' (as off)"
    assert "DJANGO_SECURE_SSL_REDIRECT='ture' does not read as true or false" in result.stderr
