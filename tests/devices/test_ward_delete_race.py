"""A ward deleted while another administrator moves a pump into it: no pump loses its ward behind its screens.

`ward_delete` moves each of the ward's pumps out with a `device:status` change, then deletes the ward. A pump moved
into the ward after it listed them would be nulled by the foreign key (`SET_NULL`) with no change: its screens
would show it in a ward that no longer exists. On SQLite the delete's IMMEDIATE transaction keeps the move out;
on PostgreSQL (`-p tests.support.postgres`) only the ward's row lock does.
"""

import threading

import pytest
from django.db import IntegrityError, connection, connections

from devices.models import ChangeLogEntry, Device, Ward
from devices.services import registration
from devices.services.registration import pump_registration_save, ward_delete
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_pump_moved_into_a_ward_being_deleted_is_never_left_without_a_change(monkeypatch):
    icu, er = make_ward("icu"), make_ward("er")
    make_device("PUMP_IN_ICU", ward=icu)
    make_device("PUMP_MOVING", ward=er)
    moved, outcome = threading.Event(), {}

    def move_into_icu() -> None:
        try:
            pump = Device.objects.get(device_id="PUMP_MOVING")
            pump.ward_id = icu.pk
            pump_registration_save(device=pump, fields=["ward"])
            outcome["moved"] = True
        except (IntegrityError, Ward.DoesNotExist) as exc:  # the ward went first: the move is refused, the pump stays
            outcome["refused"] = str(exc)
        finally:
            moved.set()
            connections.close_all()

    saved = registration.pump_registration_save
    mover = threading.Thread(target=move_into_icu)

    def then_a_move_arrives(**kwargs):
        result = saved(**kwargs)
        if not mover.is_alive() and not moved.is_set():
            mover.start()  # another administrator's save, while the ward's pumps are being moved out
            moved.wait(timeout=2.0)  # done at once unless the ward's lock holds it until this deletion commits
        return result

    monkeypatch.setattr(registration, "pump_registration_save", then_a_move_arrives)
    ward_delete(ward=icu)
    mover.join(timeout=30)
    assert not mover.is_alive()
    for device in Device.objects.select_related("ward"):
        last = ChangeLogEntry.objects.filter(device=device).order_by("-seq").first()
        shown = last.body.get("status", {}).get("ward") if last else (device.ward.code if device.ward else None)
        assert shown == (device.ward.code if device.ward else None), (
            f"{device.device_id} is in ward {device.ward and device.ward.code!r} but its screens were last told "
            f"{shown!r} ({connection.vendor}; the move: {outcome})"
        )
