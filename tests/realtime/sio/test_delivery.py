"""Deliveries without python-socketio's task per recipient send what `emit` sends, to whom it sends it."""

import asyncio

import socketio

from protocol.events import DEVICE_PROGRESS, DeviceChange
from realtime.sio import delivery


class Recorder:
    """Stands in for Engine.IO's `send_packet`: what each connection would be sent, in order."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.sent: list[tuple[str, str]] = []
        self.failing = failing

    async def send_packet(self, eio_sid: str, packet) -> None:
        if eio_sid in self.failing:
            raise ConnectionError(eio_sid)
        self.sent.append((eio_sid, packet.encode()))


def server_with(members: int, recorder: Recorder) -> tuple[socketio.AsyncServer, list[str]]:
    """A server whose client namespace has `members` connections in the room of pump P1."""
    server = socketio.AsyncServer(async_mode="asgi")
    server.eio.send_packet = recorder.send_packet

    async def connect() -> list[str]:
        sids = []
        for number in range(members):
            sid = await server.manager.connect(f"eio{number}", "/")
            await server.manager.enter_room(sid, "/", "device:P1")
            sids.append(sid)
        return sids

    return server, asyncio.run(connect())


def change(seq: int = 7) -> DeviceChange:
    body = {"deliveredVolumeMl": 4.25, "note": 'é \u2028 "quoted"', "nested": {"a": [1, None, True]}}
    return DeviceChange("P1", seq, DEVICE_PROGRESS, body, "icu", 3)


def test_a_room_gets_what_emit_sends_minus_the_skipped_members():
    emitted, ours = Recorder(), Recorder()
    server, sids = server_with(4, emitted)
    asyncio.run(server.emit(DEVICE_PROGRESS, change().wire_payload(), room="device:P1", skip_sid=[sids[1]]))
    server_ours, sids_ours = server_with(4, ours)
    packets = delivery.change_packets(server_ours, change())
    asyncio.run(delivery.send_to_room(server_ours, "device:P1", packets, skip=frozenset({sids_ours[1]})))
    assert sorted(ours.sent) == sorted(emitted.sent)
    assert [eio_sid for eio_sid, _ in ours.sent] == ["eio0", "eio2", "eio3"]


def test_one_client_gets_what_emit_to_it_sends_and_a_change_is_encoded_once():
    emitted, ours = Recorder(), Recorder()
    server, sids = server_with(2, emitted)
    asyncio.run(server.emit(DEVICE_PROGRESS, change().wire_payload(), to=sids[0]))
    server_ours, sids_ours = server_with(2, ours)
    shared = change()
    for sid in sids_ours:
        asyncio.run(delivery.send_to_sid(server_ours, sid, delivery.change_packets(server_ours, shared)))
    assert ours.sent[0] == emitted.sent[0]
    assert ours.sent[1] == ("eio1", emitted.sent[0][1])
    assert delivery.change_packets(server_ours, shared) is shared.encodings[delivery.ENCODING]


def test_a_failing_connection_does_not_keep_the_event_from_the_others_and_a_gone_one_gets_nothing():
    recorder = Recorder(failing=frozenset({"eio0"}))
    server, sids = server_with(3, recorder)
    packets = delivery.change_packets(server, change())
    asyncio.run(delivery.send_to_room(server, "device:P1", packets))
    assert [eio_sid for eio_sid, _ in recorder.sent] == ["eio1", "eio2"]
    asyncio.run(server.manager.disconnect(sids[2], "/"))
    asyncio.run(delivery.send_to_sid(server, sids[2], packets))
    assert [eio_sid for eio_sid, _ in recorder.sent] == ["eio1", "eio2"]


def test_the_encoding_kept_on_a_change_is_not_part_of_its_equality():
    first, second = change(), change()
    delivery.change_packets(socketio.AsyncServer(async_mode="asgi"), first)
    assert first == second and "encodings" not in repr(first)
