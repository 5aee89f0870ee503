"""Building paho-mqtt clients from broker settings: credentials, TLS with certificate checks, TCP_NODELAY."""

import socket
import ssl

import paho.mqtt.client as mqtt


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
