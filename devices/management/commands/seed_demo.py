"""`manage.py seed_demo`: a demo clinician, an admin, a ward and a few pumps, idempotently."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand

from devices.models import Device, Ward

DEMO_PUMPS = [
    ("PUMP_0001", "Bed 1 pump", "1", True),
    ("PUMP_0002", "Bed 2 pump", "2", True),
    ("PUMP_0003", "Bed 3 pump (legacy firmware)", "3", False),
]


class Command(BaseCommand):
    help = "Create the demo ward, pumps, clinician and admin (safe to run again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--password", default="pumpstream-demo", help="Password for the demo accounts.")

    def handle(self, *args, password: str, **options) -> None:
        ward, _ = Ward.objects.get_or_create(code="icu", defaults={"name": "Intensive Care Unit"})
        for device_id, name, bed, presence in DEMO_PUMPS:
            Device.objects.get_or_create(
                device_id=device_id,
                defaults={"name": name, "ward": ward, "bed": bed, "model": "Demo pump", "has_presence": presence},
            )
        clinician = self._user("clinician", password, staff=False)
        clinician.user_permissions.add(*Permission.objects.filter(codename__in=["command_device", "acknowledge_alarm"]))
        ward.members.add(clinician)
        admin = self._user("admin", password, staff=True)
        ward.members.add(admin)
        self.stdout.write(f"Demo ward '{ward.code}' with {len(DEMO_PUMPS)} pumps.")
        self.stdout.write(f"Sign in as clinician / {password} (admin / {password} for the admin).")

    def _user(self, username: str, password: str, *, staff: bool):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created:
            user.set_password(password)
            user.save()
        return user
