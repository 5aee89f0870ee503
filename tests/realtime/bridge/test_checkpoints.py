"""The bridge's WAL checkpoints run on a thread of their own, never inside a batch's commit (SQLite only)."""

import threading

import pytest
from django.db import connection

from devices.models import Ward
from realtime.bridge.checkpoints import WalCheckpointer

pytestmark = pytest.mark.django_db(transaction=True)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="WAL checkpoints are SQLite's")


def autocheckpoint_of_a_new_connection() -> int:
    """`wal_autocheckpoint` as a connection opened now, on a thread of its own, has it."""
    found: list[int] = []

    def read() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA wal_autocheckpoint")
                found.append(cursor.fetchone()[0])
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(timeout=10)
    return found[0]


@sqlite_only
def test_while_installed_no_connection_of_the_process_checkpoints_in_its_commits():
    checkpointer = WalCheckpointer()
    with connection.cursor() as cursor:  # opened before: the worker's start-up records
        cursor.execute("SELECT 1")
    assert checkpointer.install()
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            assert cursor.fetchone()[0] == 0, "a connection opened before the install still checkpoints in commits"
        assert autocheckpoint_of_a_new_connection() == 0, "a connection opened after the install checkpoints"
    finally:
        checkpointer.uninstall()
    assert autocheckpoint_of_a_new_connection() == 1000, "after uninstall new connections must checkpoint again"


@sqlite_only
def test_a_checkpoint_copies_the_log_back_into_the_database():
    """A PASSIVE checkpoint copies back the log up to the oldest reader's snapshot: another process reading the same
    test database at that moment (a Daphne of this test session polling its change log) leaves its last pages in
    the log until a later checkpoint (a full run once had 321 of 324 copied). So: checkpoints until one copied it
    all, each a turn of the checkpoint thread; a reader holds its snapshot for a read, never for seconds."""
    checkpointer = WalCheckpointer()
    checkpointer.install()
    results = []
    try:
        Ward.objects.bulk_create([Ward(code=f"W{n}", name=f"Ward {n}") for n in range(200)])
        for _ in range(200):
            results.append(checkpointer.checkpoint())
            busy, logged, copied = results[-1]
            if copied == logged:
                break
            threading.Event().wait(0.05)
    finally:
        checkpointer.uninstall()
    assert busy == 0 and logged > 0 and copied == logged, results


@pytest.mark.skipif(connection.vendor == "sqlite", reason="the other engines")
def test_elsewhere_the_bridge_leaves_checkpoints_alone():
    checkpointer = WalCheckpointer()
    assert not checkpointer.install() and not checkpointer.installed, "a checkpoint thread on a non-SQLite database"


@sqlite_only
def test_the_checkpoint_thread_runs_until_stopped():
    checkpointer = WalCheckpointer(interval_s=0.01)
    thread = threading.Thread(target=checkpointer.run)
    thread.start()
    try:
        for _ in range(500):
            if checkpointer.checkpoints >= 3:
                break
            threading.Event().wait(0.01)
    finally:
        checkpointer.stop()
        thread.join(timeout=10)
    assert checkpointer.checkpoints >= 3 and not thread.is_alive()
