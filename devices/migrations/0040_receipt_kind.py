"""The receipts keep their message's kind (`MessageReceipt.kind`, review 45 F1): a message numbered below its pump's
mark is exempt from being late only when a message of the same kind used its key before, never a tick's partner of
another kind (`devices/services/late_reports.py`).

Added by SQL rather than by `AddField`, which on SQLite copies the whole table (the bridge's hottest, issue 17) into a
new one while holding the write lock for a NOT NULL column; `ADD COLUMN ... DEFAULT 0 NOT NULL` rewrites nothing on
either database (PostgreSQL 11+ keeps a constant default in the catalogue). The default stays in the database: a
bridge of the release before inserts receipts without the column during a rolling deploy (kind 0: not known)."""

from django.db import migrations, models

ADD = 'ALTER TABLE "devices_messagereceipt" ADD COLUMN "kind" smallint DEFAULT 0 NOT NULL'
DROP = 'ALTER TABLE "devices_messagereceipt" DROP COLUMN "kind"'


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0039_device_seq_applied"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, reverse_sql=DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="messagereceipt",
                    name="kind",
                    field=models.SmallIntegerField(
                        db_default=0,
                        help_text="The message's kind (records.RECEIPT_KINDS); 0: received before kinds were kept.",
                    ),
                ),
            ],
        ),
    ]
