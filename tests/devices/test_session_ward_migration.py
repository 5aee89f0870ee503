"""Migration 0042_session_ward on infusions kept before it (review 46, H2): each gets the ward it ended in, as the
audit of its pump's moves tells it, not its pump's ward now (which gave the pump's new ward the records of the ward it
left); one on its pump gets its pump's ward."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import InfusionSession
from tests.devices.test_alarm_sources import sequences_kept  # noqa: F401  (fixture)

BEFORE, AFTER = [("devices", "0041_command_asked_at")], [("devices", "0042_session_ward")]
ORDER = {"flow_rate_ml_min": 1.0, "planned_volume_ml": 10.0, "planned_time_min": 10.0}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sequences_kept")
def test_0042_gives_each_infusion_the_ward_it_ended_in():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    ward = old.get_model("devices", "Ward").objects
    ward_b, icu, theatre = (ward.create(code=code, name=code) for code in ("mig_b", "mig_icu", "mig_theatre"))
    pumps, events = old.get_model("devices", "Device").objects, old.get_model("devices", "DeviceEvent").objects
    moved, stayed = pumps.create(device_id="MIG_MOVED", ward=theatre), pumps.create(device_id="MIG_STAYED", ward=icu)
    now = timezone.now()
    hours = {hour: now - timedelta(hours=10 - hour) for hour in range(10)}

    def moved_at(hour: int, left: str | None, to: str) -> None:
        events.create(device=moved, kind="user.pump_edited", received_at=hours[hour],
                      payload={"fields": ["ward"], "changes": {"ward": {"from": left, "to": to}}})  # fmt: skip

    events.create(device=moved, kind="user.pump_edited", received_at=hours[1],
                  payload={"fields": ["bed"], "changes": {"bed": {"from": "1", "to": "2"}}})  # fmt: skip
    moved_at(2, "mig_gone", "mig_b")  # from a ward deleted since
    moved_at(4, "mig_b", "mig_icu")
    moved_at(6, "mig_icu", "mig_theatre")
    sessions = old.get_model("devices", "InfusionSession").objects

    def session(infusion_id: str, pump, status: str, ended_hour: int | None) -> None:
        ended = hours[ended_hour] if ended_hour is not None else None
        sessions.create(infusion_id=infusion_id, device=pump, status=status, ended_at=ended,
                        status_changed_at=ended or now, created_at=(ended or now) - timedelta(minutes=30),
                        **ORDER)  # fmt: skip

    session("inf_mig_gone", moved, "stopped", 1)
    session("inf_mig_b", moved, "completed", 3)
    session("inf_mig_icu", moved, "cancelled", 5)
    session("inf_mig_theatre", moved, "stopped", 7)
    session("inf_mig_on_pump", moved, "running", None)
    session("inf_mig_stayed", stayed, "completed", 2)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = InfusionSession.objects.filter(infusion_id__startswith="inf_mig")
    wards = dict(migrated.values_list("infusion_id", "ward__code"))
    assert wards == {
        "inf_mig_gone": None,  # its ward deleted since: staff only
        "inf_mig_b": "mig_b",
        "inf_mig_icu": "mig_icu",
        "inf_mig_theatre": "mig_theatre",
        "inf_mig_on_pump": "mig_theatre",
        "inf_mig_stayed": "mig_icu",
    }, wards
