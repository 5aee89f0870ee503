"""The hot path's hand-written SQL: rows become the models the ORM would build, values are prepared as it would."""

import pytest
from django.db import connection
from django.utils import timezone

from devices.models import Device
from devices.services.progress_lock import DEVICE_LOCKED_FIELDS
from devices.services.sql import _prepare, models_select, select_in_sql
from devices.states import Presence
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db


def test_models_select_converts_columns_as_the_orm_does():
    heard = timezone.now()
    make_device("PUMP_0001", ward=make_ward(), last_seen_at=heard, latest_progress={"progressPercent": 12.5})
    make_device("PUMP_0002")
    fields = tuple(field.name for field in Device._meta.concrete_fields)
    sql = select_in_sql(Device, fields, (("device_id", 2),), order_by_pk=True)

    selected = models_select(Device, fields, sql, ["PUMP_0001", "PUMP_0002"])

    from_orm = list(Device.objects.filter(device_id__in=["PUMP_0001", "PUMP_0002"]).order_by("pk"))
    assert [device.pk for device in selected] == [device.pk for device in from_orm]
    for mine, theirs in zip(selected, from_orm, strict=True):
        assert {field.attname: getattr(mine, field.attname) for field in Device._meta.concrete_fields} == {
            field.attname: getattr(theirs, field.attname) for field in Device._meta.concrete_fields
        }
        assert not mine._state.adding
    assert selected[0].last_seen_at == heard and selected[0].last_seen_at.tzinfo is not None
    assert selected[0].latest_progress == {"progressPercent": 12.5}


def test_models_select_leaves_unselected_fields_deferred():
    make_device("PUMP_0001", latest_progress={"progressPercent": 1.0})
    sql = select_in_sql(Device, DEVICE_LOCKED_FIELDS, (("device_id", 1),))

    (device,) = models_select(Device, DEVICE_LOCKED_FIELDS, sql, ["PUMP_0001"])

    assert device.get_deferred_fields() == {"latest_progress"}
    assert device.latest_progress == {"progressPercent": 1.0}  # loaded on access, as Django does


def test_models_select_refuses_fields_out_of_the_models_order():
    sql = select_in_sql(Device, ("device_id", "id"), (("device_id", 1),))
    with pytest.raises(ValueError, match="model's order"):
        models_select(Device, ("device_id", "id"), sql, ["PUMP_0001"])


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("last_seen_at", timezone.now()),
        ("presence", Presence.ONLINE),
        ("device_id", "PUMP_0001"),
        ("event_seq", 42),
        ("latest_progress", {"progressPercent": 12.5}),
        ("latest_progress", None),
        ("ward", 7),
        ("ward", None),
    ],
)
def test_bulk_update_values_are_prepared_as_django_prepares_them(field_name, value):
    field = Device._meta.get_field(field_name)
    prepared = _prepare(field, field.get_internal_type(), value, {}, connection)
    expected = field.get_db_prep_save(value, connection)
    assert type(prepared) is type(expected)
    # PostgreSQL's backend wraps a JSON value in psycopg's Jsonb, which compares by identity: compare what it holds
    assert getattr(prepared, "obj", prepared) == getattr(expected, "obj", expected)


def test_an_empty_in_list_selects_nothing_on_every_engine():
    """`IN ()` is SQLite's only: on PostgreSQL it was a syntax error, so a bridge batch of unregistered pumps' reports
    failed its bulk path, logged a traceback per message and went one by one (the bridge fell 30 s behind a fleet of
    50 unknown pumps in a CI run, and a test's registered pump's reports were read after its test had ended)."""
    from devices.services.progress_lock import progress_pumps_lock

    make_device("PUMP_0001")
    with connection.cursor() as cursor:
        cursor.execute(select_in_sql(Device, ("device_id",), (("device_id", 0),)), [])
        assert cursor.fetchall() == []
    assert progress_pumps_lock(device_ids=["NOT_REGISTERED"]) == {}
