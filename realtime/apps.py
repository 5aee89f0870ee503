"""The realtime app: the Socket.IO server, the Channels endpoint and the MQTT bridge."""

from django.apps import AppConfig
from django.conf import settings


class RealtimeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "realtime"

    def ready(self) -> None:
        """With Redis between several Daphne, any process that changes rights nudges them all (`rights_signals`)."""
        if settings.REDIS_URL:
            from realtime.rights_signals import rights_signals_connect

            rights_signals_connect()
