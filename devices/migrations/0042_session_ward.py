"""An infusion keeps the ward it was given in (`InfusionSession.ward`, review 46 H2): its record (patient, order, events,
history) was judged by its pump's ward now, so once an idle pump moved, the new ward read the old ward's patients'
names, beds, drugs and delivery curves, and the ward that gave them lost them.

Sessions from before get the ward they ended in, as the audit tells it: a pump's moves by the admin (and by
`pump_registration_save`, the one road that records them) are `user.pump_edited` events naming the ward before and
after; an ended session's ward is the one its pump left at its first recorded move after the session's end, else its
pump's ward now. A session on its pump (pending, running, paused) is its pump's ward's, as from now on. The pump's ward
now for all of them would have given the new ward the very records this migration takes from it. A move by another
road (the shell, a queryset) was never recorded: such a pump's sessions get its ward now, as before this column.

A nullable foreign key is added by ADD COLUMN on both databases (no table copy on SQLite); the backfill is one UPDATE,
then one per ward for the sessions of pumps that moved."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery

ON_PUMP = ("pending", "running", "paused")  # ACTIVE_SESSION_STATUSES as of this migration
NOT_MOVED = object()


def session_wards_backfill(apps, schema_editor) -> None:
    """Each session's ward: its pump's now, then, for the ended sessions of pumps with recorded moves, the ward their
    pump left at its first move after their end."""
    if schema_editor.connection.vendor == "postgresql":  # the new column's foreign key checked by each UPDATE, not
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # at commit: its index, made after this, refuses a
        # table with checks pending ("pending trigger events")
    session_model = apps.get_model("devices", "InfusionSession")
    device_model = apps.get_model("devices", "Device")
    pump_ward = device_model.objects.filter(pk=OuterRef("device_id")).values("ward_id")[:1]
    session_model.objects.update(ward_id=Subquery(pump_ward))
    ward_of_code = dict(apps.get_model("devices", "Ward").objects.values_list("code", "pk"))
    by_ward: dict[int | None, list[int]] = {}
    for device_pk, moves in _recorded_moves(apps).items():
        ended = session_model.objects.filter(device_id=device_pk).exclude(status__in=ON_PUMP)
        for pk, ended_at, changed_at in ended.values_list("pk", "ended_at", "status_changed_at"):
            at = ended_at or changed_at
            left = next((code for moved_at, code in moves if moved_at > at), NOT_MOVED)
            if left is not NOT_MOVED:
                by_ward.setdefault(ward_of_code.get(left) if left else None, []).append(pk)
    for ward_pk, pks in by_ward.items():
        session_model.objects.filter(pk__in=pks).update(ward_id=ward_pk)


def _recorded_moves(apps) -> dict[int, list[tuple]]:
    """Each pump's recorded moves, oldest first: (when, the code of the ward it left, None: it had none)."""
    edits = apps.get_model("devices", "DeviceEvent").objects.filter(kind="user.pump_edited")
    moves: dict[int, list[tuple]] = {}
    for device_pk, at, payload in edits.order_by("received_at", "pk").values_list("device_id", "received_at", "payload"):
        changes = payload.get("changes") if isinstance(payload, dict) else None
        ward = changes.get("ward") if isinstance(changes, dict) else None
        if isinstance(ward, dict) and ward.get("from") != ward.get("to"):
            moves.setdefault(device_pk, []).append((at, ward.get("from")))
    return moves


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0041_command_asked_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="infusionsession",
            name="ward",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=models.deletion.SET_NULL, related_name="+", to="devices.ward"
            ),
        ),
        migrations.RunPython(session_wards_backfill, migrations.RunPython.noop),
    ]
