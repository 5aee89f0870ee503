"""`manage.py prune_history --older-than DAYS`: keep history tables bounded."""

from django.conf import settings
from django.core.management.base import BaseCommand

from devices.services.records import history_prune


class Command(BaseCommand):
    help = "Delete progress samples, device events and message receipts older than the retention."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than", type=int, dest="days", default=settings.PUMPSTREAM["HISTORY_RETENTION_DAYS"],
            help="Age in days (default: HISTORY_RETENTION_DAYS).",
        )  # fmt: skip

    def handle(self, *args, days: int, **options) -> None:
        deleted = history_prune(older_than_days=days)
        for table, count in deleted.items():
            self.stdout.write(f"{table}: {count} deleted")
