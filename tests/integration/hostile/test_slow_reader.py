"""Review 23, finding 6: a signed-in user whose sockets stop reading made Daphne hold everything sent to them.

Neither python-engineio's per-socket queue nor Daphne's (autobahn over Twisted) write path has a bound or
back-pressure: `websocket.send` appends to the transport's buffer whatever the peer reads. A client that subscribes,
then stops reading its sockets while still answering Engine.IO's ping blindly (a "3" every few seconds, written
without reading anything), keeps each socket open and every change of the pumps it watches is kept in Daphne's memory
for it. One account may hold 20 sockets (`SOCKETS_PER_PRINCIPAL`), each receiving every change again: a ward's
progress at 1 Hz grows Daphne by gigabytes a day until the OOM killer stops monitoring for every screen (the threat
model: a browser user must never "hold unbounded server resources").

The guard (`realtime/slow_readers.py`): a connection with more than `SOCKET_UNSENT_MAX_BYTES` sent to it beyond what
its network took is closed, logged and counted (`pumpstream_realtime_slow_readers_closed_total`); a client that reads
keeps its socket. The same for the Channels endpoint (`/ws/devices/`) and for Socket.IO's long polling (a client that
never polls but POSTs its PONGs: python-engineio's queue). On the old main 20 silent sockets grew Daphne by 58 MB for
2,400 progress changes of one pump (the same sockets reading: 2.9 MB) and nothing was ever closed.
"""

import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

from devices.models import Device
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.changes import changes_commit
from tests.support.sio import session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SOCKETS = 20  # SOCKETS_PER_PRINCIPAL
PER_TICK = 20  # 40 changes a second for one pump: a ward of 40 pumps running
PADDING = "x" * 1800  # a pump's unknown progress fields, within MAX_UNKNOWN_BYTES: kept and forwarded
UNSENT_MAX_BYTES = 1024 * 1024  # SOCKET_UNSENT_MAX_BYTES's default
# Everything a silent socket can take before its connection must have been closed: the kernel's largest send buffer
# (tcp_wmem's maximum; 1.9 MB was taken on loopback here), Twisted's 64 KiB before it says full, the limit, and 1 MiB.
KERNEL_SEND_MAX = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
VOLUME_CAP = KERNEL_SEND_MAX + 64 * 1024 + UNSENT_MAX_BYTES + 1024 * 1024
# The sockets' own bound (all 20 at their most at once: 21 MB), a quarter more for the frames' headers and the
# allocator, and 10 MB for the rest of the process (measured: 25.9 MB when the last was closed after 1,540 changes;
# old main: 58 MB at 2,400 changes, 106 MB at the volume cap, 3,540; 20 reading sockets: 2.9 MB).
MEMORY_BOUND_MB = 1.25 * SOCKETS * (UNSENT_MAX_BYTES + 64 * 1024) / 2**20 + 10


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def metric(url: str, staff_cookie: str, name: str, labels: str = "") -> float:
    """One value of Daphne's /metrics (0 when absent)."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Cookie": staff_cookie})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    found = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def closed_as_slow(url: str, staff_cookie: str, transport: str) -> float:
    return metric(url, staff_cookie, "pumpstream_realtime_slow_readers_closed_total", f'{{transport="{transport}"}}')


def silent_socket(url: str, cookie: str, device_id: str) -> websocket.WebSocket:
    """A raw Engine.IO v4 websocket that connects, subscribes to one pump and reads its answer, then reads no more."""
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", header=[f"Cookie: {cookie}"],
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),), timeout=5,
    )  # fmt: skip
    assert ws.recv().startswith("0"), "Engine.IO open"
    ws.send("40")
    assert ws.recv().startswith("40"), "Socket.IO connect"
    ws.send(f'42["{events.SUBSCRIBE_DEVICE}",{{"deviceId":"{device_id}"}}]')
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if "stream:subscribed" in ws.recv():
            return ws
    raise AssertionError("not subscribed")


class ReadingSocket(threading.Thread):
    """A socket that reads everything (answering pings), as a browser does: the last `seq` it saw of the pump."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        super().__init__(daemon=True)
        self.ws, self.last_seq, self.closed = ws, 0, False

    def run(self) -> None:
        try:
            while True:
                frame = self.ws.recv()
                if frame == "2":
                    self.ws.send("3")
                elif frame.startswith(f'42["{events.DEVICE_PROGRESS}"'):
                    self.last_seq = json.loads(frame[2:])[1]["seq"]
                elif not frame:
                    break
        except (OSError, websocket.WebSocketException):
            pass
        self.closed = True


def blind_ponger(sockets: list, stop: threading.Event, pong) -> threading.Thread:
    """Written, never read: Engine.IO's PONG every 2 s keeps each socket alive."""

    def answer_pings_blindly() -> None:
        while not stop.wait(2.0):
            for ws in sockets:
                try:
                    pong(ws)
                except OSError:
                    pass

    thread = threading.Thread(target=answer_pings_blindly, daemon=True)
    thread.start()
    return thread


def commit_until(device_id: str, done, per_socket_cap: int, per_tick: int = PER_TICK, tick_s: float = 0.5) -> int:
    """Commit padded progress of the pump, paced (a client that reads keeps up), until `done()` or until each
    subscriber was sent `per_socket_cap` bytes; the changes committed."""
    body = {"progress": {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 1.0, "note": PADDING}}
    committed = 0
    while committed * len(PADDING) < per_socket_cap and not done():
        changes_commit(device_id, [(events.DEVICE_PROGRESS, body)] * per_tick)
        committed += per_tick
        time.sleep(tick_s)
    return committed


def peak_growth_mb(pid: int, before: float) -> float:
    """Daphne's RSS growth once it stopped growing (4 s without another MB)."""
    grown, settled_at, deadline = rss_mb(pid) - before, time.monotonic(), time.monotonic() + 60
    while time.monotonic() < deadline and time.monotonic() - settled_at < 4:
        time.sleep(0.5)
        now = rss_mb(pid) - before
        if now > grown + 1:
            grown, settled_at = now, time.monotonic()
    return grown


def test_sockets_that_stop_reading_do_not_grow_daphne_without_bound(daphne_server):
    ward = make_ward("r23slow")
    make_device("R23_SLOW", ward=ward)
    watcher = make_user("r23-slow-reader", ward=ward)
    staff = session_cookie(make_user("r23-slow-ops", is_staff=True))
    sockets = [silent_socket(daphne_server.url, session_cookie(watcher), "R23_SLOW") for _ in range(SOCKETS)]
    nurse_cookie = session_cookie(make_user("r23-nurse", ward=ward))
    nurse = ReadingSocket(silent_socket(daphne_server.url, nurse_cookie, "R23_SLOW"))
    nurse.start()
    stop = threading.Event()
    blind_ponger(sockets, stop, lambda ws: ws.send("3"))
    try:
        pid = daphne_server.process.pid
        before = rss_mb(pid)
        closed_before = closed_as_slow(daphne_server.url, staff, "websocket")

        def all_closed() -> bool:
            return closed_as_slow(daphne_server.url, staff, "websocket") - closed_before >= SOCKETS

        committed = commit_until("R23_SLOW", all_closed, VOLUME_CAP)
        seq = Device.objects.get(device_id="R23_SLOW").event_seq
        grown = peak_growth_mb(pid, before)
        closed = closed_as_slow(daphne_server.url, staff, "websocket") - closed_before
        sent_mb = committed * len(PADDING) * SOCKETS / 2**20
        assert closed == SOCKETS, (
            f"{SOCKETS} sockets of one signed-in user that stopped reading (answering pings blindly) were sent "
            f"~{sent_mb:.0f} MB ({committed} progress changes of one pump, seq {seq}) and {closed:.0f} of them were "
            f"closed; Daphne grew by {grown:.0f} MB: nothing bounds what is buffered for a socket that does not read"
        )
        assert grown <= MEMORY_BOUND_MB, (
            f"Daphne grew by {grown:.0f} MB for {SOCKETS} silent sockets, more than their bound ({MEMORY_BOUND_MB:.0f})"
        )
        deadline = time.monotonic() + 10
        while nurse.last_seq < seq and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not nurse.closed and nurse.last_seq == seq, (
            f"a nurse's socket that reads must keep its stream: closed {nurse.closed}, seq {nurse.last_seq} of {seq}"
        )
    finally:
        stop.set()
        for ws in [*sockets, nurse.ws]:
            ws.close(timeout=0.1)


def silent_endpoint(url: str, cookie: str, device_id: str) -> websocket.WebSocket:
    """A Channels endpoint connection that subscribes to one pump and reads its answer, then reads no more."""
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + "/ws/devices/", header=[f"Cookie: {cookie}"],
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),), timeout=5,
    )  # fmt: skip
    ws.send(json.dumps({"event": events.SUBSCRIBE_DEVICE, "data": {"deviceId": device_id}}))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if events.STREAM_SUBSCRIBED in ws.recv():
            return ws
    raise AssertionError("not subscribed")


def test_a_channels_endpoint_connection_that_stops_reading_is_closed(daphne_server):
    ward = make_ward("r23slowws")
    make_device("R23_SLOW_WS", ward=ward)
    watcher = make_user("r23-slow-endpoint", ward=ward)
    staff = session_cookie(make_user("r23-slow-ws-ops", is_staff=True))
    connections = [silent_endpoint(daphne_server.url, session_cookie(watcher), "R23_SLOW_WS") for _ in range(2)]
    try:
        closed_before = closed_as_slow(daphne_server.url, staff, "websocket")

        def all_closed() -> bool:
            return closed_as_slow(daphne_server.url, staff, "websocket") - closed_before >= len(connections)

        committed = commit_until("R23_SLOW_WS", all_closed, VOLUME_CAP, per_tick=50, tick_s=0.25)
        closed = closed_as_slow(daphne_server.url, staff, "websocket") - closed_before
        assert closed == len(connections), (
            f"{len(connections)} /ws/devices/ connections that stopped reading were sent "
            f"~{committed * len(PADDING) / 2**20:.1f} MB each and {closed:.0f} were closed"
        )
    finally:
        for ws in connections:
            ws.close(timeout=0.1)


class PollingClient:
    """A raw Engine.IO v4 long-polling client: connects and subscribes, then never polls again, only POSTs PONGs."""

    def __init__(self, url: str, cookie: str) -> None:
        self.base, self.cookie = f"{url}/socket.io/?EIO=4&transport=polling", cookie
        handshake = self._request(self.base)
        self.sid = json.loads(handshake[1:])["sid"]
        self.url = f"{self.base}&sid={self.sid}"

    def _request(self, url: str, body: str | None = None) -> str:
        headers = {"Cookie": self.cookie, "Content-Type": "text/plain;charset=UTF-8"}
        data = body.encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers=headers)
        return urllib.request.urlopen(request, timeout=10).read().decode()

    def post(self, body: str) -> None:
        self._request(self.url, body)

    def poll(self) -> str:
        return self._request(self.url)


def test_a_long_polling_client_that_never_polls_is_closed(daphne_server):
    ward = make_ward("r23slowpoll")
    make_device("R23_SLOW_POLL", ward=ward)
    watcher = make_user("r23-slow-poller", ward=ward)
    staff = session_cookie(make_user("r23-slow-poll-ops", is_staff=True))
    client = PollingClient(daphne_server.url, session_cookie(watcher))
    client.post("40")
    assert "40" in client.poll(), "Socket.IO connect"
    client.post(f'42["{events.SUBSCRIBE_DEVICE}",{{"deviceId":"R23_SLOW_POLL"}}]')
    deadline = time.monotonic() + 5
    while events.STREAM_SUBSCRIBED not in client.poll():
        assert time.monotonic() < deadline, "not subscribed"
    stop = threading.Event()
    blind_ponger([client], stop, lambda polling: polling.post("3"))
    try:
        closed_before = closed_as_slow(daphne_server.url, staff, "polling")

        def closed() -> bool:
            return closed_as_slow(daphne_server.url, staff, "polling") - closed_before >= 1

        committed = commit_until("R23_SLOW_POLL", closed, 4 * UNSENT_MAX_BYTES, per_tick=50, tick_s=0.25)
        assert closed(), (
            f"a polling client that never polled (but POSTed PONGs) was queued ~{committed * len(PADDING) / 2**20:.1f}"
            " MB and kept its socket: nothing bounds python-engineio's queue"
        )
    finally:
        stop.set()
