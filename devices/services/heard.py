"""When a pump was last heard (`last_seen_at`): the one writer of it, for the one-message path and the bulk progress
path alike.

Last heard is the server's receive time of the pump's newest message (`InboundMessage.received_at`, taken when paho
hands the message over), never the pump's own `timestamp`: a pump whose clock runs in the future cannot make itself
look heard later than it was. It only moves forward: a message applied after one the server received later (a
bridge that took a pump's slot over with the other's clock a little ahead, a clock stepped back) is heard, but does
not make the pump look quieter than it is. What would make a silent pump look alive is a stored moment still to come
on the server's clock (a clock that ran ahead, then was corrected): that is no hearing, and the receive time
replaces it, so a pump that then goes quiet turns stale a heartbeat timeout after the last message the server really
received, not when the wrong clock's moment comes.
"""

from datetime import datetime

from django.utils import timezone

from devices.models import Device
from devices.states import Presence


def pump_heard(*, device: Device, received_at: datetime, says_offline: bool = False) -> tuple[str, ...]:
    """The pump was heard at `received_at`: `last_seen_at` as `heard_at` says, and presence back online unless the
    message is an `offline` (`says_offline`). Returns the fields set (`last_seen_at` always: written with every
    message, one UPDATE of one shape); the caller stores them.

    An `offline` is no hearing: it is mostly the broker speaking for a pump it stopped hearing (its Last Will, a
    keepalive and a half after the pump's last packet), and "last heard" stays at the pump's last message of its
    own, on every page (review 28: "Offline · Last heard 0 s ago" for a pump silent 51 s). A pump's own goodbye
    then reads a few milliseconds older than it was."""
    if not says_offline:
        device.last_seen_at = heard_at(stored=device.last_seen_at, received_at=received_at)
    if device.presence == Presence.OFFLINE and not says_offline:
        device.presence = Presence.ONLINE
        return ("last_seen_at", "presence")
    return ("last_seen_at",)


def heard_at(*, stored: datetime | None, received_at: datetime, now: datetime | None = None) -> datetime:
    """The pump's last heard moment once a message received at `received_at` is applied: the later of the two, but
    never a stored moment still to come on the server's clock (`now`, read only when the stored one is the later)."""
    if stored is None or received_at >= stored:
        return received_at
    if stored > (now or timezone.now()):
        return received_at  # never heard at a moment that has not come yet: a clock that ran ahead wrote it
    return stored
