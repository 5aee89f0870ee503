"""The devices app: pumps, infusion sessions, commands, alarms and their services."""

from django.apps import AppConfig


class DevicesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "devices"

    def ready(self) -> None:
        """A ward holding a pump in use is never left watched by no one, by the admin or any other code (`watchers`)."""
        from devices.services.watchers import watchers_guard_connect

        watchers_guard_connect()
