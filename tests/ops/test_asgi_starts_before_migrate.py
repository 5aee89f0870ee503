"""Daphne's application loads on a database nothing has migrated yet: its start-up reads no table (the metrics
registry once asked the change log's collector for its series, which read the missing table, so `runserver` or
Daphne on a new database failed before `migrate` could be run beside it)."""

import subprocess
import sys

from tests.support.processes import ROOT


def test_the_asgi_application_loads_on_an_unmigrated_database(tmp_path):
    database = tmp_path / "new.sqlite3"
    env = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "true", "DJANGO_ENV_FILE": "/nonexistent",
           "DJANGO_SECRET_KEY": "test-only-" + "k" * 40, "BRIDGE_INTERNAL_SECRET": "test-only-" + "b" * 40,
           "DATABASE_URL": f"sqlite:///{database}"}  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", "import pumpstream.asgi; print('loaded')"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert loaded.returncode == 0 and "loaded" in loaded.stdout, f"the application did not load:\n{loaded.stderr}"
    assert not database.exists() or database.stat().st_size == 0, "loading the application touched the database"
