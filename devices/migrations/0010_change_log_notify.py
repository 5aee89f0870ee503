"""On PostgreSQL, a commit that appended changes notifies `pumpstream_changes` (realtime/pg_notify.py listens).

A statement-level trigger on the change log calls pg_notify inside the appending transaction; PostgreSQL
delivers it at commit, once per transaction. Nothing on SQLite (its wakes are in-process and the bridge's).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION pumpstream_change_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pumpstream_changes', '');
    RETURN NULL;
END $$;
CREATE TRIGGER pumpstream_change_log_notify AFTER INSERT ON devices_changelogentry
    FOR EACH STATEMENT EXECUTE FUNCTION pumpstream_change_log_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS pumpstream_change_log_notify ON devices_changelogentry;
DROP FUNCTION IF EXISTS pumpstream_change_log_notify();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("devices", "0009_session_progress_on_the_pump")]

    operations = [migrations.RunPython(create, drop)]
