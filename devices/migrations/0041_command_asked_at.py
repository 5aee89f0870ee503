"""A person's command keeps when she pressed (`Command.asked_at`, review 46 H1): the page's `askedAt`, on the server's
clock as it knows it; a request arriving too long after it is refused, and the monitor names the press, not the
arrival. A nullable column without a default: `ADD COLUMN` on both databases, no table copy; a bridge of the release
before never writes it (the server's own commands have none)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0040_receipt_kind"),
    ]

    operations = [
        migrations.AddField(
            model_name="command",
            name="asked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
