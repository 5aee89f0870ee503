"""The change log as tests read and write it: what a process recorded, and changes committed from the test."""

from collections.abc import Iterator, Sequence

from django.db import transaction

from devices.models import ChangeLogEntry
from devices.services.changes import change_record, device_lock
from protocol.events import DeviceChange


class RecordedChanges(Sequence):
    """The changes in the change log, oldest first, read afresh at each use (a rolled-back change is absent)."""

    def __init__(self) -> None:
        self.after_id = 0

    def clear(self) -> None:
        """From now on, only changes recorded after this call."""
        self.after_id = ChangeLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def _rows(self):
        return ChangeLogEntry.objects.filter(id__gt=self.after_id)

    def _changes(self) -> list[DeviceChange]:
        rows = self._rows().select_related("device").order_by("id")
        return [DeviceChange(row.device.device_id, row.seq, row.event, row.body, row.ward_code) for row in rows]

    def __getitem__(self, index):
        return self._changes()[index]

    def __len__(self) -> int:
        return self._rows().count()

    def __iter__(self) -> Iterator[DeviceChange]:
        return iter(self._changes())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(self._changes())


def changes_commit(device_id: str, bodies: Sequence[tuple[str, dict]]) -> list[DeviceChange]:
    """Commit changes of one pump as any process would (its row lock, the next seqs, the log), in one transaction."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        return [change_record(device=device, event=event, body=body) for event, body in bodies]
