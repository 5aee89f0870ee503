"""Building paho-mqtt clients from broker settings: credentials, TLS with certificate checks, TCP_NODELAY."""

import socket
import ssl
import struct
from collections.abc import Sequence

import paho.mqtt.client as mqtt

PUBACK_PACKET = struct.Struct("!BBH")  # PUBACK, remaining length 2, the message id: success in MQTT 3.1.1 and 5


def make_client(client_id: str, *, broker: dict, protocol: int = mqtt.MQTTv5, reconnect_max_s: int = 30) -> mqtt.Client:
    """A paho client (VERSION2 callbacks) with credentials, TLS where configured and capped reconnect backoff.

    `broker` is the shape of `settings.MQTT` (`USERNAME`, `PASSWORD`, `TLS`, `CA_FILE`, `CERT_FILE`, `KEY_FILE`).
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if broker.get("USERNAME"):
        client.username_pw_set(broker["USERNAME"], broker.get("PASSWORD") or None)
    if broker.get("TLS"):
        client.tls_set(ca_certs=broker.get("CA_FILE"), certfile=broker.get("CERT_FILE"),
                       keyfile=broker.get("KEY_FILE"), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        client.tls_insecure_set(False)
    client.reconnect_delay_set(min_delay=1, max_delay=reconnect_max_s)
    return client


def set_tcp_nodelay(client: mqtt.Client) -> None:
    """Turn Nagle off on the client's socket (paho 2.2 does not); call from `on_connect`."""
    sock = client.socket()
    if sock is not None and hasattr(sock, "setsockopt"):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # a TLS-wrapped or closed socket: latency only, never correctness


def pubacks_send(client: mqtt.Client, mids: Sequence[int]) -> None:
    """Acknowledge QoS 1 messages (manual acknowledgement) with one write from the calling thread.

    What `client.ack(mid, 1)` sends for each, the same bytes, but as one entry of paho's queue: `ack` also wrote a
    byte to paho's wake-up socket per message, so that paho's network thread left its select() and ran a loop
    for nothing once the calling thread had written the PUBACK itself (a client driven by `loop()`, as the
    bridge's). Here it is woken only when something is left to write (the socket's buffer full), so that it
    writes the rest. paho has no public API for this: it uses paho 2.x's `_out_packet` entries as its own
    `_packet_queue` makes them (`tests/protocol/test_pubacks.py` holds it to paho's behaviour).
    """
    if not mids:
        return
    packet = b"".join(PUBACK_PACKET.pack(mqtt.PUBACK, 2, mid) for mid in mids)
    client._out_packet.append({"command": mqtt.PUBACK, "mid": 0, "qos": 0, "pos": 0, "to_process": len(packet),
                               "packet": packet, "info": None})  # fmt: skip
    # As `_packet_queue`: written now unless paho's thread is inside a callback (it writes on its next turn).
    if client._thread is None and client._on_socket_register_write is None and client._in_callback_mutex.acquire(False):
        client._in_callback_mutex.release()
        client.loop_write()
    if client.want_write() and client._sockpairW is not None:
        try:
            client._sockpairW.send(b"0")
        except BlockingIOError:
            pass  # a wake is pending already
