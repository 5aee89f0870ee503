"""Socket.IO deliveries: each event encoded once, put on each recipient's Engine.IO queue in turn.

python-socketio's `emit` encodes an event once per call, then makes a task per recipient and waits for them
all. For a snapshot's events, sent to one subscriber at a time, that is an encoding per subscriber plus a
task and a wait per event; in a reconnect storm (issue 17: 2,000 snapshots of about 6 events each, on one
event loop) those tasks queued ahead of the live events' own steps. Here a change is encoded once (kept on
the `DeviceChange`, which every subscriber of a shared snapshot read and every watcher of a pump's room
share) and handed to each recipient's queue directly, in order, with no task per recipient: the same
packets `emit` would send (tests/realtime/sio/test_delivery.py compares them). Deliveries stay in this
process, as `ClusterManager.emit` keeps them (`realtime/cluster.py`): each Daphne serves its own sockets.
"""

import json
import logging
from collections.abc import Iterable

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from protocol.events import DeviceChange

logger = logging.getLogger(__name__)

NAMESPACE = "/"
ENCODING = "socketio"  # the key of this transport's encoding in `DeviceChange.encodings`

Packets = list[eio_packet.Packet]

EVENT_PREFIX = str(sio_packet.EVENT)  # a change's packet: an EVENT of the "/" namespace, no ack id, no attachments


def event_packets(server: socketio.AsyncServer, event: str, payload: dict) -> Packets:
    """The Engine.IO packets of one event of the client namespace, as `emit` builds them."""
    encoded = server.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, payload]).encode()
    parts = encoded if isinstance(encoded, list) else [encoded]
    return [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]


def change_packets(server: socketio.AsyncServer, change: DeviceChange) -> Packets:
    """The change's packets, encoded at its first delivery and reused for every later one.

    A change's body comes from the change log's JSON, so it holds no bytes: its one text packet is written as
    `socketio.packet.Packet.encode` writes an EVENT of the "/" namespace, without the packet object and its
    walk of the payload looking for binary parts (half of the encoding's 10 us per progress event).
    """
    packets = change.encodings.get(ENCODING)
    if packets is None:
        text = EVENT_PREFIX + json.dumps([change.event, change.wire_payload()], separators=(",", ":"))
        packets = change.encodings[ENCODING] = [eio_packet.Packet(eio_packet.MESSAGE, text)]
    return packets


async def send_to_sid(server: socketio.AsyncServer, sid: str, packets: Packets) -> None:
    """Queue the packets for one connected client (nothing when it has gone)."""
    eio_sid = server.manager.eio_sid_from_sid(sid, NAMESPACE)
    if eio_sid is not None:
        await _send(server, [eio_sid], packets)


async def send_to_room(server: socketio.AsyncServer, room: str, packets: Packets, skip: Iterable[str] = ()) -> None:
    """Queue the packets for every member of the room on this process, except the `skip` sids."""
    skip = frozenset(skip)
    members = [eio_sid for sid, eio_sid in server.manager.get_participants(NAMESPACE, room) if sid not in skip]
    await _send(server, members, packets)


async def _send(server: socketio.AsyncServer, eio_sids: list[str], packets: Packets) -> None:
    for eio_sid in eio_sids:
        try:
            for packet in packets:
                await server.eio.send_packet(eio_sid, packet)
        except Exception:  # one broken connection must not keep the event from the others
            logger.exception("delivery to a connection failed", extra={"eio_sid": eio_sid})
