"""Fixtures of the scale-out tests: a Redis with a password, and Daphne processes that use it."""

import time

import pytest
import redis

from realtime.cluster import CHANNEL
from realtime.rights_signals import rights_signals_connect
from tests.support.daphne import DaphneServer
from tests.support.redis import RedisServer


@pytest.fixture
def redis_server(tmp_path):
    """A `redis-server` of this test only, on a free loopback port, with a password."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def nudging(settings, redis_server):
    """This test process nudges the Daphne processes as the admin or `manage.py` would (`rights_signals`)."""
    settings.REDIS_URL = redis_server.url
    rights_signals_connect()
    return redis_server


@pytest.fixture
def daphnes_on_redis(django_db_setup, artifacts_dir, redis_server):
    """`start(count, **env)`: that many Daphne processes on the test database and this Redis (none with
    `with_redis=False`), started; every one of them (a half-started one too) is stopped after the test."""
    started: list[DaphneServer] = []

    def start(count: int, *, with_redis: bool = True, **env: str) -> list[DaphneServer]:
        redis_env = {"REDIS_URL": redis_server.url} if with_redis else {}
        servers = [DaphneServer(artifacts_dir, **redis_env, **env) for _ in range(count)]
        started.extend(servers)  # before starting: stopping one that never started is a no-op
        for server in servers:
            server.start()
        return servers

    yield start
    for server in started:
        server.stop()


def wait_for_listeners(redis_url: str, count: int, *, timeout: float = 10.0) -> None:
    """Block until `count` Daphne processes listen on the Socket.IO channel (each starts at its first socket)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} Daphne processes listened on {CHANNEL!r} within {timeout}s")
