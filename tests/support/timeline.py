"""A run's timeline, for tuning how `make test` shares the suite among workers (`-p tests.support.timeline`, never
loaded by default): each test's start and end (wall clock) and its worker, one line each, to
`$PUMPSTREAM_TIMELINE_DIR/<worker>.tsv`."""

import os
import time
from pathlib import Path

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = os.environ.get("PUMPSTREAM_TIMELINE_DIR")
    start = time.time()
    try:
        return (yield)
    finally:
        if folder:
            timeline_write(Path(folder), start, item.nodeid)


def timeline_write(folder: Path, start: float, nodeid: str) -> None:
    """One test's line in its worker's file."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (folder / f"{worker}.tsv").open("a") as out:
        out.write(f"{start:.3f}\t{time.time():.3f}\t{nodeid}\n")
