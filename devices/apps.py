"""The devices app: pumps, infusion sessions, commands, alarms and their services."""

from django.apps import AppConfig


class DevicesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "devices"
