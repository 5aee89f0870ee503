"""PumpStream settings, read from the environment (django-environ).

Development works with no `.env`; production (`DJANGO_DEBUG=false`) refuses to start
without a real secret key. Every variable is documented in `.env.example`.
"""

import os
from pathlib import Path
from tempfile import gettempdir

import environ
from django.core.exceptions import ImproperlyConfigured

from pumpstream.mqtt_config import mqtt_settings_from_env

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
INSECURE_DEV_KEY = "django-insecure-development-only-key"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_DEV_KEY if DEBUG else "")
if not DEBUG and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a long random value in production")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Socket.IO origin check: None means same origin only; never "*" and never [] (that disables it).
SOCKETIO_CORS_ALLOWED_ORIGINS = env.list("SOCKETIO_CORS_ALLOWED_ORIGINS", default=[]) or None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "devices",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pumpstream.urls"
ASGI_APPLICATION = "pumpstream.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: an SQLite file by default. WAL, a busy timeout and IMMEDIATE transactions let
# Daphne and the bridge write the same file (see shared/pitfalls.md).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env.float("SQLITE_BUSY_TIMEOUT_S", default=20.0),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file (not memory) so Daphne and bridge subprocesses see it; per process so parallel runs never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str(
            "TEST_DATABASE_PATH", default=str(Path(gettempdir()) / f"pumpstream-test-{os.getpid()}.sqlite3")
        )
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Production hardening: `manage.py check --deploy` is clean with DJANGO_DEBUG=false.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# The default capacity (100 messages per channel) silently drops a burst to a Channels endpoint client.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}

# MQTT: MQTT_URL, or the original system's HIVEMQ_* variables (port 8883 means TLS).
MQTT = mqtt_settings_from_env(env)

# Secret the bridge uses on its internal Socket.IO connection into Daphne.
BRIDGE_INTERNAL_SECRET = env.str("BRIDGE_INTERNAL_SECRET", default="insecure-dev-bridge-secret" if DEBUG else "")
if not DEBUG and len(BRIDGE_INTERNAL_SECRET) < 32:
    raise ImproperlyConfigured("BRIDGE_INTERNAL_SECRET must be set to a long random value in production")
# Bearer token for /metrics (staff sign-in works too); empty disables token access.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where the bridge reaches the Socket.IO server (Daphne) to forward events.
REALTIME_INTERNAL_URL = env.str(
    "REALTIME_INTERNAL_URL", default=f"http://127.0.0.1:{env.int('WEB_PORT', default=8000)}"
)

# Timeouts, in seconds unless named otherwise; tests shorten them through the environment.
PUMPSTREAM = {
    "HEARTBEAT_TIMEOUT_S": env.float("HEARTBEAT_TIMEOUT_S", default=10.0),
    "CONFIRMATION_TIMEOUT_S": env.float("CONFIRMATION_TIMEOUT_S", default=30.0),
    "COMMAND_EXPIRY_S": env.float("COMMAND_EXPIRY_S", default=60.0),
    "COMMAND_ACK_TIMEOUT_S": env.float("COMMAND_ACK_TIMEOUT_S", default=10.0),
    "BRIDGE_HEARTBEAT_S": env.float("BRIDGE_HEARTBEAT_S", default=2.0),
    # The most a bridge batch (one transaction) waits for more messages after its first; it waits as long
    # as the previous commit took, up to this. 0 (default): never wait, a batch is what queued during the
    # last commit (lowest latency); e.g. 20 saves about a third of the bridge's CPU for more latency.
    "BRIDGE_BATCH_WINDOW_MS": env.float("BRIDGE_BATCH_WINDOW_MS", default=0.0),
    "BRIDGE_STALE_AFTER_S": env.float("BRIDGE_STALE_AFTER_S", default=10.0),
    "RECONNECT_GRACE_S": env.float("RECONNECT_GRACE_S", default=15.0),
    "PROGRESS_SAMPLE_INTERVAL_S": env.float("PROGRESS_SAMPLE_INTERVAL_S", default=5.0),
    "HISTORY_RETENTION_DAYS": env.int("HISTORY_RETENTION_DAYS", default=90),
    "DEAD_LETTERS_PER_SOURCE": env.int("DEAD_LETTERS_PER_SOURCE", default=500),
    "MAX_PAYLOAD_BYTES": env.int("MAX_PAYLOAD_BYTES", default=16 * 1024),
    # Per-pump flood limit on routine progress (normal: about 1/s); the excess is shed and counted. 0: off.
    "PROGRESS_FLOOD_PER_S": env.float("PROGRESS_FLOOD_PER_S", default=10.0),
    "PROGRESS_FLOOD_BURST": env.float("PROGRESS_FLOOD_BURST", default=100.0),
    # How long Daphne's fan-out holds a pump's later changes for a missing earlier one still in transit.
    "REORDER_WINDOW_S": env.float("REORDER_WINDOW_S", default=2.0),
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "pumpstream.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "engineio": {"level": "WARNING"},
        "socketio": {"level": "WARNING"},
    },
}
