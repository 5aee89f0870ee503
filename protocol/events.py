"""Socket.IO event names and the change every device event carries: the only place they are written (no Django).

The browser reads the same names from these definitions (`templates/base.html`, `json_script`); the bodies of
the events are typed models in `protocol/payloads.py` (with the one codec to the wire, `payload_codec.py`), built
from the database's rows in `devices/payloads.py`. A `DeviceChange` carries its body in wire form, as the change
log stores it.
"""

from dataclasses import dataclass, field

# Server → client
STREAM_SUBSCRIBED = "stream:subscribed"
DEVICE_STATUS = "device:status"
DEVICE_PROGRESS = "device:progress"
DEVICE_ERROR = "device:error"
DEVICE_NOTIFICATION = "device:notification"
DEVICE_INFUSION_CONFIRMED = "device:infusion:confirmed"
DEVICE_INFUSION_COMPLETED = "device:infusion:completed"
DEVICE_ALARM = "device:alarm"
DEVICE_SESSION = "device:session"
DEVICE_COMMAND = "device:command"
DEVICE_REMOVED = "device:removed"  # v1.2: the pump was deleted; the last event of its subscription
WARD_SUMMARY = "ward:summary"
WARD_ALARM = "ward:alarm"  # v1.1: every alarm change of a ward's pump, at once to its ward feeds
WARD_SILENCE = "ward:silence"  # v1.1: the ward's shared, time-limited silence of alarm sound
ALARM_ESCALATED = "alarm:escalated"  # to an escalation tier's group (e.g. charge nurses) of the pump's ward
ERROR = "error"
# Client → server
SUBSCRIBE_DEVICE = "subscribe:device"
SUBSCRIBE_DEVICES = "subscribe:devices"  # v1.1: one request for many pumps, as if subscribed one by one
UNSUBSCRIBE_DEVICE = "unsubscribe:device"
SUBSCRIBE_WARD = "subscribe:ward"
UNSUBSCRIBE_WARD = "unsubscribe:ward"
SILENCE_WARD = "silence:ward"  # v1.1

DEVICE_EVENTS = (
    DEVICE_STATUS,
    DEVICE_PROGRESS,
    DEVICE_ERROR,
    DEVICE_NOTIFICATION,
    DEVICE_INFUSION_CONFIRMED,
    DEVICE_INFUSION_COMPLETED,
    DEVICE_ALARM,
    DEVICE_SESSION,
    DEVICE_COMMAND,
    DEVICE_REMOVED,
)
# Device events no pump's traffic causes (an administrator's act): random traffic never exercises them.
ADMINISTRATIVE_DEVICE_EVENTS = (DEVICE_REMOVED,)
CLIENT_REQUESTS = (
    SUBSCRIBE_DEVICE,
    SUBSCRIBE_DEVICES,
    UNSUBSCRIBE_DEVICE,
    SUBSCRIBE_WARD,
    UNSUBSCRIBE_WARD,
    SILENCE_WARD,
)
SERVER_EVENTS = (*DEVICE_EVENTS, STREAM_SUBSCRIBED, WARD_SUMMARY, WARD_ALARM, WARD_SILENCE, ALARM_ESCALATED, ERROR)


@dataclass(frozen=True)
class DeviceChange:
    """One recorded change of one pump: an event name, the pump's `seq` and the event's own fields."""

    device_id: str
    seq: int
    event: str
    body: dict = field(default_factory=dict)
    ward_code: str | None = None
    registration: int | None = None  # the pump's row id (a pump deleted and registered anew has a new one)
    # a transport's encoding of this change, made once for all its recipients (realtime/sio/delivery.py)
    encodings: dict = field(default_factory=dict, compare=False, repr=False)

    def wire_payload(self) -> dict:
        """The payload as clients receive it: top-level `deviceId` and `seq` plus the event's fields."""
        return {"deviceId": self.device_id, "seq": self.seq, **self.body}
