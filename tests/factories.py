"""Small builders for test data (plain functions; no factory library needed)."""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client

from devices.models import Alarm, Device, Ward
from devices.services.alarm_rules import alarm_resolve
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.orders import InfusionOrder
from devices.services.registration import pump_delete
from devices.states import AlarmPriority, AlarmResolveReason, AlarmSource

TEST_PASSWORD = "pw-for-tests-only"


def make_ward(code: str = "icu") -> Ward:
    return Ward.objects.get_or_create(code=code, defaults={"name": code.upper()})[0]


def make_device(device_id: str = "PUMP_0001", *, ward: Ward | None = None, **fields) -> Device:
    return Device.objects.create(device_id=device_id, ward=ward or make_ward(), **fields)


def pump_taken_out_of_use(device_id: str) -> None:
    """Its active alarms resolved ("pump taken out of use") and the pump deleted, as an administrator does it: a pump
    with an alarm active is never deleted (`pump_delete` and the models' guard), and its alarms go with it."""
    resolver = get_user_model().objects.get_or_create(username="out-of-use-resolver")[0]
    for alarm in Alarm.objects.filter(device__device_id=device_id, state="active"):
        alarm_resolve(alarm_id=alarm.pk, user=resolver, reason=AlarmResolveReason.PUMP_REPLACED, alerts=alarm.alerts)
    pump_delete(device=Device.objects.get(device_id=device_id))


@functools.cache
def password_hash() -> str:
    """`TEST_PASSWORD` hashed once per process, as production hashes it (PBKDF2, 1,000,000 iterations: 0.3-0.6 s
    here; the suite makes some 340 users, and a hundred users' rights test spent a minute hashing). The same hash
    for every user, so the Daphne and bridge the tests start verify a sign-in as they would any other; a hash at
    fewer iterations was re-hashed at the first real sign-in, and every session opened before it then ended."""
    return make_password(TEST_PASSWORD)


def make_user(username: str = "nurse", *, ward: Ward | None = None, can_command: bool = True, **fields):
    user = get_user_model()(username=username, password=password_hash(), **fields)
    user.save()
    if can_command:
        user.user_permissions.add(*Permission.objects.filter(codename__in=["command_device", "acknowledge_alarm"]))
    if ward is not None:
        ward.members.add(user)
    return user


def make_order(**overrides) -> InfusionOrder:
    fields = {"flow_rate_ml_min": 2.0, "planned_volume_ml": 30.0, "planned_time_min": 15.0,
              "bolus_enabled": True, "bolus_volume_ml": 5.0, "drug": "Saline 0.9%"}  # fmt: skip
    fields.update(overrides)
    return InfusionOrder(**fields)


def signed_in(user) -> Client:
    """A browser signed in as `user`, its CSRF checked, holding the cookie a page gets when it first loads."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # sets the CSRF cookie, as the page does
    return client


def raise_high_alarm(device_id: str, type_: str = "occlusion", message: str = "Line blocked",
                     priority: str = AlarmPriority.HIGH) -> Alarm:  # fmt: skip
    """A HIGH alarm of the pump (or of `priority`), raised as the bridge raises one (under the pump's lock, told by
    the change log)."""
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type=type_, priority=priority,
                           source=AlarmSource.DEVICE, message=message)  # fmt: skip
