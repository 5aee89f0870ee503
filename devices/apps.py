"""The devices app: pumps, infusion sessions, commands, alarms and their services."""

from django.apps import AppConfig


class DevicesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "devices"

    def ready(self) -> None:
        """The models' guards, for code that goes through no service: a ward holding a pump in use is never left
        watched by no one (`watchers`), and never deleted, nor is such a pump (`deletion_guards`)."""
        from devices.services.deletion_guards import deletion_guards_connect
        from devices.services.watchers import watchers_guard_connect

        watchers_guard_connect()
        deletion_guards_connect()
