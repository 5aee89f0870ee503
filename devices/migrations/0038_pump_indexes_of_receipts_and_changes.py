"""The receipts' and the change log's index of the pump alone dropped (issue 17): each table's unique constraint begins
with the pump and serves every look-up by it, so that index only cost every insert one more b-tree and page written.

Dropped by name rather than by `AlterField`'s own operation, which on SQLite copies the whole table (both are the
bridge's largest) into a new one while holding the write lock; the names are the ones Django gave them on both
databases (`_create_index_name`, the same on SQLite and PostgreSQL for these lengths)."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = [
    ("devices_changelogentry", "devices_changelogentry_device_id_f55e956c"),
    ("devices_messagereceipt", "devices_messagereceipt_device_id_8b8a2890"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0037_device_base_manager"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"', reverse_sql=f'CREATE INDEX "{index}" ON "{table}" ("device_id")'
                )
                for table, index in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="changelogentry",
                    name="device",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        help_text="The pump's row (its registration); kept after the pump is deleted.",
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="devices.device",
                    ),
                ),
                migrations.AlterField(
                    model_name="messagereceipt",
                    name="device",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="devices.device",
                    ),
                ),
            ],
        ),
    ]
