"""Operations endpoints: `/healthz`, `/readyz`, `/metrics` (Prometheus) and the staff operations page."""

import hmac
import logging
import socket

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from devices.ops_selectors import operations_summary
from devices.selectors import bridge_status
from devices.services.schema import migrations_unapplied
from pumpstream.ops_metrics import DOMAIN, refresh_domain_gauges
from realtime.sio.database import db_thread_answers

logger = logging.getLogger(__name__)
BROKER_CONNECT_TIMEOUT_S = 1.0
REALTIME_PROBE_TIMEOUT_S = 2.0  # a `SELECT 1` queued behind the realtime thread's work (a connect storm's reads)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers; nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        logger.warning("readiness: database unreachable")
        return False


def _broker_ok() -> bool:
    broker = settings.MQTT
    try:
        with socket.create_connection((broker["HOST"], broker["PORT"]), timeout=BROKER_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        logger.warning("readiness: broker unreachable")
        return False


_schema_seen_current = False  # once this process has seen every migration applied, it is not asked again


def _schema_ok() -> bool:
    """Every migration of this code applied (new code started before `migrate` must not read as ready): asked of the
    database (~2-5 ms) until it first is, then remembered for the process's life."""
    global _schema_seen_current
    if not _schema_seen_current:
        try:
            _schema_seen_current = not migrations_unapplied()
        except DatabaseError:
            return False
    return _schema_seen_current


def _readiness() -> tuple[dict[str, str], dict]:
    database = _database_ok()
    bridge = bridge_status() if database else {"brokerConnected": False}
    checks = {
        "database": "ok" if database else "fail",
        "schema": "ok" if database and _schema_ok() else "fail",
        "broker": "ok" if _broker_ok() else "fail",
        "bridge": "ok" if bridge["brokerConnected"] else "fail",  # alive, and holding the broker
    }
    return checks, bridge


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    """Database and broker reachable, the schema migrated, the bridge alive and holding the broker, and the realtime
    side's database thread reading (`realtime`: what Socket.IO connects, subscribes, ward feeds and escalations read
    on, a thread and a connection of its own); 503 names the failing check (and `bridgeCause` why the bridge does
    not hold the broker, when it says)."""
    checks, bridge = await sync_to_async(_readiness)()
    checks["realtime"] = "ok" if await db_thread_answers(REALTIME_PROBE_TIMEOUT_S) else "fail"
    if checks["realtime"] == "fail":
        logger.warning("readiness: the realtime side's database thread does not read")
    ready = all(state == "ok" for state in checks.values())
    if not ready:  # Django's own ERROR line of the 503 is filtered out (`ReadinessAnswerFilter`): an answer
        logger.info("not ready", extra={"reason": ",".join(name for name, state in checks.items() if state != "ok")})
    body = {"status": "ok" if ready else "fail", "checks": checks}
    if bridge.get("cause"):
        body["bridgeCause"] = bridge["cause"]
    return JsonResponse(body, status=200 if ready else 503)


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    return bool(request.user.is_authenticated and request.user.is_staff)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this process: a bearer token from the environment, or a staff sign-in."""
    if not _metrics_allowed(request):
        return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    refresh_domain_gauges()
    return HttpResponse(generate_latest(DOMAIN), content_type=CONTENT_TYPE_LATEST)


def _staff(user) -> bool:
    return bool(user.is_authenticated and user.is_staff)


@never_cache
@user_passes_test(_staff)
def operations_page(request: HttpRequest) -> HttpResponse:
    """The operations page for staff: the pipeline's health at a glance, refreshed live."""
    page = {"timeZone": settings.TIME_ZONE}  # its times are shown in the server's zone, as on every page
    return render(request, "ops/operations.html", {"summary": operations_summary(), "page": page})


@never_cache
@require_GET
@user_passes_test(_staff)
def operations_status(request: HttpRequest) -> JsonResponse:
    """The operations page's live data: the summary plus this process's connected clients."""
    from realtime.sio.server import client_namespace

    subscribers = list(client_namespace.subscribers.values())
    clients = {
        "connected": len(subscribers),
        "deviceSubscriptions": sum(len(s.limits.devices) for s in subscribers),
        "wardSubscriptions": sum(len(s.limits.wards) for s in subscribers),
    }
    return JsonResponse({**operations_summary(), "clients": clients, "at": timezone.now().isoformat()})
