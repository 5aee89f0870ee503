"""When the broker the bridge holds started, read from its `$SYS/broker/uptime`: a pump's presence is vouched for
only by a broker holding its Last Will.

A pump with presence says `online` once, retained, and nothing more while idle; its Last Will, published by the broker
that sees its connection die, is the only word that it went away. A broker that crashed (SIGKILL: the OOM killer, a
segfault, a VM reset) published no Will for the pumps that went while it was down, and its persistence brings their
retained `online` back (review 34, finding 4: "Online" for ever). A live pump reconnects to the new broker and says
`online` again; one last heard before the broker started, and silent for the reconnect grace after it, is vouched
for by no broker: housekeeping takes its presence back to unknown (`pumps.pump_presence_unvouched`), and it reads
stale by its age, as a pump without presence does.

Mosquitto publishes its uptime (whole seconds) at start and every `sys_interval` (10 s by default), retained. Only
a live copy is read: the retained copy handed over on subscribing is up to `sys_interval` old (state, not news).
The start is taken a second early (the uptime is rounded down), so a pump heard just after it is never taken for one
heard before; a pump heard in the second before a crash is then taken for one heard since (the crash and the start
are rarely that close). A broker that publishes no uptime (`sys_interval 0`, an ACL without `$SYS/broker/uptime`
for the bridge, another broker) leaves presence as the pumps said it, as before.
"""

from datetime import datetime, timedelta

UPTIME_ROUNDING_S = 1  # Mosquitto's uptime is whole seconds, rounded down


def broker_started_at(payload: bytes, *, received_at: datetime) -> datetime | None:
    """The broker's start by an uptime message received live at `received_at` (Mosquitto: `b"1234 seconds"`), at
    the earliest it can have been; None for a payload that is not a count of seconds."""
    words = payload.split(maxsplit=1)
    if not words or not words[0].isdigit() or len(words[0]) > 12:
        return None
    return received_at - timedelta(seconds=int(words[0]) + UPTIME_ROUNDING_S)
