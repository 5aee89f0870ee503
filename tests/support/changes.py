"""The change log as tests read and write it: what a process recorded, and changes committed from the test."""

from collections.abc import Iterator, Sequence

from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.models import ChangeLogEntry, Device
from devices.services.changes import change_record, device_lock
from protocol import events
from protocol import payloads as wire
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


def changes_commit(device_id: str, bodies: Sequence[tuple[str, dict | wire.Payload]]) -> list[DeviceChange]:
    """Commit changes of one pump as any process would (its row lock, the next seqs, the log), in one transaction.

    A body may be its event's typed payload, or a test's loose dict (`typed_body` fills it in).
    """
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        return [change_record(device=device, event=event, body=typed_body(device, event, body))
                for event, body in bodies]  # fmt: skip


def typed_body(device: Device, event: str, body: dict | wire.Payload) -> wire.Payload:
    """A test's loose body as its event's payload: progress keeps its fields (they pass through, as a pump's
    own do), a status is the pump's, an alarm's missing fields take defaults."""
    if isinstance(body, wire.Payload):
        return body
    now = timezone.now()
    if event == events.DEVICE_PROGRESS:
        return payloads.progress_body(body.get("progress", {}), infusion_id=None, received_at=now)
    if event == events.DEVICE_STATUS:
        return payloads.status_body(device, now=now)
    if event == events.DEVICE_ALARM:
        alarm = {"id": 1, "type": "occlusion", "key": "occlusion", "errorCode": None, "priority": "high",
                 "state": "active", "acknowledged": None, "resolved": None, "message": "", "raisedAt": now,
                 "lastRaisedAt": now, "alertedAt": now, "alerts": 1, "clearedAt": None, "count": 1,
                 "source": "device", "infusionId": None, "escalation": None, **body.get("alarm", {})}  # fmt: skip
        return wire.AlarmEvent(alarm=wire.Alarm(**alarm))
    raise ValueError(f"no loose body for {event}: pass its payload model")
