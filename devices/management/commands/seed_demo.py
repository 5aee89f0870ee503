"""`manage.py seed_demo`: a demo clinician, an admin, a ward and a few pumps, idempotently (development only)."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError

from devices.models import Device, Ward
from devices.services.registration import pump_register

DEMO_PUMPS = [
    ("PUMP_0001", "Bed 1 pump", "1", True),
    ("PUMP_0002", "Bed 2 pump", "2", True),
    ("PUMP_0003", "Bed 3 pump (legacy firmware)", "3", False),
]
DEMO_USERS = ("clinician", "admin")


def demo_password_file() -> Path:
    """Where the generated demo password is kept for `scripts/banner.sh` (git-ignored `.run/`)."""
    return Path(settings.DEMO_PASSWORD_FILE)


def demo_password_stored() -> str | None:
    """The demo password generated earlier for this install, if any."""
    path = demo_password_file()
    return path.read_text().strip() or None if path.is_file() else None


def demo_password_store(password: str) -> None:
    """Keep the generated demo password where only this install's owner can read it."""
    path = demo_password_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n")
    path.chmod(0o600)


def demo_pumps_register(ward: Ward) -> list[str]:
    """Register the demo pumps missing from `ward`'s install (`pump_register`: one deleted before goes on from its
    last `seq`, its `device:status` recorded); the device ids registered. A demo pump already there is left as is."""
    registered = []
    for device_id, name, bed, presence in DEMO_PUMPS:
        if Device.objects.filter(device_id=device_id).exists():
            continue
        pump_register(device=Device(device_id=device_id, name=name, ward=ward, bed=bed, model="Demo pump",
                                    has_presence=presence))  # fmt: skip
        registered.append(device_id)
    return registered


CLINICIAN_PERMISSIONS = ["command_device", "acknowledge_alarm", "resolve_alarm"]


class Command(BaseCommand):
    help = "Create the demo ward, pumps, clinician and admin (safe to run again; refuses in production)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--password", default=None, help="Password for the demo accounts (default: generated once and kept)."
        )

    def handle(self, *args, password: str | None, **options) -> None:
        if not settings.DEVELOPMENT:
            raise CommandError("seed_demo creates accounts with a printed password: development only (DJANGO_DEBUG)")
        generated = password is None
        if generated:
            password = demo_password_stored()
            reset = password is None or not self._demo_users_accept(password)
            if reset:
                password = secrets.token_urlsafe(12)
                demo_password_store(password)
        ward, _ = Ward.objects.get_or_create(code="icu", defaults={"name": "Intensive Care Unit"})
        demo_pumps_register(ward)
        reset_existing = generated and reset
        clinician = self._user("clinician", password, staff=False, reset=reset_existing)
        clinician.user_permissions.add(*Permission.objects.filter(codename__in=CLINICIAN_PERMISSIONS))
        ward.members.add(clinician)
        admin = self._user("admin", password, staff=True, reset=reset_existing)
        ward.members.add(admin)
        self.stdout.write(f"Demo ward '{ward.code}' with {len(DEMO_PUMPS)} pumps.")
        self.stdout.write(f"Sign in as clinician / {password} (admin / {password} for the admin).")

    def _demo_users_accept(self, password: str) -> bool:
        """Whether the existing demo accounts (if any) still have `password`."""
        users = get_user_model().objects.filter(username__in=DEMO_USERS)
        return all(user.check_password(password) for user in users)

    def _user(self, username: str, password: str, *, staff: bool, reset: bool):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created or reset:
            user.set_password(password)
            user.save()
        return user
