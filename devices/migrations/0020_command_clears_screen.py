from django.db import migrations, models


def mark_screen_clearing_stops(apps, schema_editor):
    """The STOPs already queued to clear a confirm screen: those of an order that ended unconfirmed (cancelled or
    timed out; a person's Stop needs an order on the pump, running or paused)."""
    Command = apps.get_model("devices", "Command")
    stops = Command.objects.filter(kind="STOP_INFUSION", session__status__in=["cancelled", "timed_out"])
    stops.update(clears_screen=True)


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0019_command_published_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="command",
            name="clears_screen",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_screen_clearing_stops, migrations.RunPython.noop),
    ]
