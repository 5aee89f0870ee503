"""The realtime app: the Socket.IO server, the Channels endpoint and the MQTT bridge."""

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "realtime"
