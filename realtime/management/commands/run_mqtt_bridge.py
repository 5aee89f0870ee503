"""`manage.py run_mqtt_bridge`: the long-running worker between the pumps and everything else."""

import logging
import signal
import sys

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from realtime.bridge.worker import GIL_SWITCH_INTERVAL_S, BatchLimits, Bridge

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Receive, validate, persist and forward pump messages; publish commands; run housekeeping."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=BatchLimits.max_messages)
        parser.add_argument(
            "--batch-window-ms", type=float, default=settings.PUMPSTREAM["BRIDGE_BATCH_WINDOW_MS"],
            help="How long a batch stays open after its first message (default: BRIDGE_BATCH_WINDOW_MS).",
        )  # fmt: skip
        parser.add_argument("--name", default="bridge", help="The BridgeStatus row this bridge writes.")
        parser.add_argument(
            "--index", type=int, default=0,
            help="This bridge's number among BRIDGE_PROCESSES (its home slots: i %% BRIDGE_PROCESSES == index).",
        )  # fmt: skip

    def handle(self, *args, **options) -> None:
        limits = BatchLimits(max_messages=options["batch_size"], window_s=options["batch_window_ms"] / 1000)
        try:
            bridge = Bridge(limits=limits, name=options["name"], index=options["index"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: bridge.stop())
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # this process's threads: see the constant
        broker = settings.MQTT
        logger.info("bridge starting", extra={"reason": f"{broker['HOST']}:{broker['PORT']} as {broker['CLIENT_ID']}"})
        bridge.run()
        self.stdout.write("bridge stopped")
