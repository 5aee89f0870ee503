"""Broker settings from the environment: `MQTT_URL`, or the original system's `HIVEMQ_*` variables."""

from urllib.parse import unquote, urlsplit

import environ

TLS_PORT = 8883


def mqtt_settings_from_env(env: environ.Env) -> dict:
    """Return the broker connection settings; port 8883 or `mqtts://` means TLS with certificate checks."""
    url = env.str("MQTT_URL", default="")
    hivemq_host = env.str("HIVEMQ_HOST", default="")
    if url:
        parts = urlsplit(url)
        tls = parts.scheme in ("mqtts", "ssl") or parts.port == TLS_PORT
        broker = {
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": parts.port or (TLS_PORT if tls else 1883),
            "USERNAME": unquote(parts.username) if parts.username else "",
            "PASSWORD": unquote(parts.password) if parts.password else "",
            "TLS": tls,
        }
    elif hivemq_host:
        port = env.int("HIVEMQ_PORT", default=TLS_PORT)
        broker = {
            "HOST": hivemq_host,
            "PORT": port,
            "USERNAME": env.str("HIVEMQ_USERNAME", default=""),
            "PASSWORD": env.str("HIVEMQ_PASSWORD", default=""),
            "TLS": port == TLS_PORT,
        }
    else:
        broker = {
            "HOST": "127.0.0.1",
            "PORT": env.int("MQTT_PORT", default=1883),
            "USERNAME": "",
            "PASSWORD": "",
            "TLS": False,
        }
    broker["CA_FILE"] = env.str("MQTT_CA_FILE", default="") or None
    # A client certificate, for a broker with `require_certificate true` (docs/operations.md).
    broker["CERT_FILE"] = env.str("MQTT_CERT_FILE", default="") or None
    broker["KEY_FILE"] = env.str("MQTT_KEY_FILE", default="") or None
    # A broker with `use_username_as_clientid` (deploy/mosquitto/production.conf) uses the username as the
    # client id whatever is asked; with a username, the id asked for is the username too, so the two agree.
    broker["CLIENT_ID"] = env.str("MQTT_CLIENT_ID", default=broker["USERNAME"] or "pumpstream-bridge")
    broker["SESSION_EXPIRY_S"] = env.int("MQTT_SESSION_EXPIRY_S", default=7 * 24 * 3600)
    broker["KEEPALIVE_S"] = env.int("MQTT_KEEPALIVE_S", default=30)
    return broker
