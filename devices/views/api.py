"""JSON endpoints the pages call: start, pause/resume/stop, cancel a pending start, acknowledge, history.

Every endpoint needs a signed-in user, CSRF protection on POST (Django's middleware), the right
permission and a pump in the user's wards (404 otherwise). Writes go through the services, which
record a DeviceEvent with the user.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse, QueryDict
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import Counter

from devices import payloads
from devices.exceptions import PumpStreamError
from devices.forms import SERVICE_FIELD_TO_FORM, InfusionOrderForm, alert_number_text
from devices.selectors import (
    alarm_visible_to,
    bridge_status,
    device_visible_to,
    events_recent,
    progress_history,
    session_current,
    session_placed_with_key,
    session_visible_to,
)
from devices.services.alarm_rules import alarm_resolve
from devices.services.alarms import alarm_acknowledge
from devices.services.asked_at import ASKED_AT_EXPECTED, asked_moment
from devices.services.requests import infusion_cancel, infusion_record_end, infusion_request
from devices.services.sessions import infusion_start
from devices.states import CommandKind
from devices.views.pages import ACKNOWLEDGE_PERMISSION, COMMAND_PERMISSION, RESOLVE_PERMISSION
from devices.views.presenters import event_entries, sample_point
from protocol.payload_codec import payload_to_wire
from protocol.safejson import JsonRefused, json_decode

logger = logging.getLogger(__name__)

USER_COMMANDS = {
    "pause": CommandKind.PAUSE_INFUSION,
    "resume": CommandKind.RESUME_INFUSION,
    "stop": CommandKind.STOP_INFUSION,
}
STATUS_FOR_CODE = {"invalid_order": 400, "invalid_command": 400, "invalid_reason": 400, "not_found": 404,
                   "asked_at_required": 400}  # else 409  # fmt: skip
CONFLICT = 409
ASKED_AT_REQUIRED = (
    "This page did not say when you pressed (a page older than the server): nothing was sent to the pump. Reload the "
    "page, then press again"
)
COMMANDS_REFUSED = Counter(
    "pumpstream_commands_refused_total", "People's Pause, Resume and Stop requests refused, by code", ["code"]
)


def error_response(message: str, *, code: str, status: int, field: str | None = None, **extra) -> JsonResponse:
    """A refusal as the pages read it: `{message, code, field}`."""
    body = {"message": message, "code": code, **extra}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


def api_endpoint(permission: str | None = None) -> Callable:
    """Signed-in (401), permitted (403), and PumpStreamError answered as JSON (400/404/409)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> JsonResponse:
            if not request.user.is_authenticated:
                return error_response("Sign in first", code="not_authenticated", status=401)
            if permission and not request.user.has_perm(permission):
                return error_response("You may not do this", code="permission_denied", status=403)
            try:
                return view(request, *args, **kwargs)
            except PumpStreamError as exc:
                field = SERVICE_FIELD_TO_FORM.get(exc.field or "", exc.field)
                status = STATUS_FOR_CODE.get(exc.code, CONFLICT)
                return error_response(exc.message, code=exc.code, status=status, field=field)

        return guarded

    return decorate


def request_data(request: HttpRequest) -> QueryDict | dict:
    """The POST body, form-encoded or JSON; a JSON body the one safe decoder refuses (`protocol/safejson.py`: a NUL
    in any text, which PostgreSQL refuses in text and jsonb and was a 500 there, deep nesting, huge numbers, ...)
    or that is not an object counts as empty."""
    if request.content_type == "application/json":
        try:
            body = json_decode(request.body or b"{}")
        except JsonRefused:
            return {}
        return body if isinstance(body, dict) else {}
    return request.POST


def not_found(what: str) -> JsonResponse:
    return error_response(f"No such {what} in your wards", code="not_found", status=404)


@require_POST
@api_endpoint(COMMAND_PERMISSION)
def infusion_start_api(request: HttpRequest, device_id: str) -> JsonResponse:
    """Validate the wizard's order and queue START_INFUSION; answers the pending session (201). A request repeated
    under the same `idempotencyKey` (its reply lost) is answered with the order it placed, whatever its state now."""
    device = device_visible_to(request.user, device_id)
    if device is None:
        return not_found("pump")
    form = InfusionOrderForm(request_data(request), device=device)
    if not form.is_valid():
        field, message = form.first_error()
        errors = {name: [str(text) for text in texts] for name, texts in form.errors.items()}
        return error_response(message, code="invalid_order", status=400, field=field, errors=errors)
    key = str(request_data(request).get("idempotencyKey", "") or request.headers.get("Idempotency-Key", ""))[:64]
    session = infusion_start(device_id=device.device_id, order=form.order(), user=request.user, idempotency_key=key)
    logger.info("infusion start requested", extra={"device_id": device.device_id, "infusion_id": session.infusion_id})
    return JsonResponse(payload_to_wire(payloads.session_body(session)), status=201)


@require_GET
@api_endpoint(COMMAND_PERMISSION)
def infusion_placed_api(request: HttpRequest, device_id: str, key: str) -> JsonResponse:
    """The order this user's start request placed under idempotency `key` (404: none): the wizard asks when the
    request's reply was lost, for the order may have been placed all the same."""
    device = device_visible_to(request.user, device_id)
    session = session_placed_with_key(request.user, device, key) if device is not None else None
    if session is None:
        return error_response("No order was placed with this request", code="not_found", status=404)
    return JsonResponse(payload_to_wire(payloads.session_body(session)))


@require_POST
@api_endpoint(COMMAND_PERMISSION)
def infusion_command_api(request: HttpRequest, device_id: str) -> JsonResponse:
    """Queue PAUSE, RESUME or STOP for the infusion the page showed (`infusionId`), pressed at `askedAt`; answers the
    command (202). A refusal is counted by its code (`pumpstream_commands_refused_total`) and logged."""
    if device_visible_to(request.user, device_id) is None:
        return not_found("pump")
    data = request_data(request)
    try:
        kind = USER_COMMANDS.get(str(data.get("command", "")).lower())
        if kind is None:
            raise PumpStreamError("Command must be pause, resume or stop", code="invalid_command", field="command")
        reason = str(data.get("reason", ""))[:200]
        key = str(data.get("idempotencyKey", "") or request.headers.get("Idempotency-Key", ""))[:64]
        command = infusion_request(device_id=device_id, kind=kind, infusion_id=infusion_shown(data), user=request.user,
                                   reason=reason, idempotency_key=key, asked_at=asked_shown(data))  # fmt: skip
    except PumpStreamError as refused:
        COMMANDS_REFUSED.labels(refused.code).inc()
        logger.info("infusion command refused", extra={"device_id": device_id, "code": refused.code})
        raise
    logger.info("infusion command requested", extra={"device_id": device_id, "command": kind})
    return JsonResponse(payload_to_wire(payloads.command_body(command)), status=202)


def asked_shown(data: QueryDict | dict) -> datetime:
    """When the person pressed (`askedAt`, required: ISO 8601 with its offset, on the server's clock as her page knows
    it). A request without it comes from a page older than the server (the API takes only a signed-in person's
    session, so its clients are the pages): refused, `asked_at_required`, never carried out unjudged however late."""
    value = data.get("askedAt")
    if value is None or value == "":
        raise PumpStreamError(ASKED_AT_REQUIRED, code="asked_at_required", field="askedAt")
    moment = asked_moment(value)
    if moment is None:
        raise PumpStreamError(ASKED_AT_EXPECTED, code="invalid_command", field="askedAt")
    return moment


def infusion_shown(data: QueryDict | dict) -> str | None:
    """The infusion the person's dialog named (`infusionId`, required; null: a pump infusing without an order)."""
    if "infusionId" not in data:
        raise PumpStreamError("Say which infusion: infusionId (null for a pump infusing without an order)",
                              code="invalid_command", field="infusionId")  # fmt: skip
    infusion_id = data.get("infusionId")
    if infusion_id is not None and not isinstance(infusion_id, str):
        raise PumpStreamError("infusionId must be the infusion's id or null", code="invalid_command",
                              field="infusionId")  # fmt: skip
    return infusion_id or None


@require_POST
@api_endpoint(COMMAND_PERMISSION)
def infusion_cancel_api(request: HttpRequest, infusion_id: str) -> JsonResponse:
    """Cancel a pending start (the pump is then told to stop); answers the session."""
    if session_visible_to(request.user, infusion_id) is None:
        return not_found("infusion")
    session = infusion_cancel(infusion_id=infusion_id, user=request.user)
    logger.info("infusion cancel requested", extra={"device_id": session.device.device_id, "infusion_id": infusion_id})
    return JsonResponse(payload_to_wire(payloads.session_body(session)))


@require_POST
@api_endpoint(COMMAND_PERMISSION)
def infusion_record_end_api(request: HttpRequest, infusion_id: str) -> JsonResponse:
    """End the record of an infusion the pump is not running (a ghost); nothing is sent to the pump; audited."""
    if session_visible_to(request.user, infusion_id) is None:
        return not_found("infusion")
    reason = str(request_data(request).get("reason", ""))[:160]
    session = infusion_record_end(infusion_id=infusion_id, user=request.user, reason=reason)
    logger.info("infusion record ended", extra={"device_id": session.device.device_id, "infusion_id": infusion_id})
    return JsonResponse(payload_to_wire(payloads.session_body(session)))


def alerts_shown(alerts: object, *, required: bool = True) -> int | None:
    """The alarm's alert number the page showed (`alerts`): an integer (digits in a form); required to resolve."""
    if alerts is None and not required:
        return None
    if isinstance(alerts, str) and alert_number_text(alerts):
        alerts = int(alerts)
    if not isinstance(alerts, int) or isinstance(alerts, bool):
        raise PumpStreamError("alerts must be the alert number shown", code="invalid_command", field="alerts")
    return alerts


@require_POST
@api_endpoint(ACKNOWLEDGE_PERMISSION)
def alarm_acknowledge_api(request: HttpRequest, alarm_id: int) -> JsonResponse:
    """Acknowledge an alarm (who and when is sent to everyone watching); answers the alarm."""
    if alarm_visible_to(request.user, alarm_id) is None:
        return not_found("alarm")
    alerts = request_data(request).get("alerts")  # the alert the page showed (integrations may leave it out)
    alarm = alarm_acknowledge(alarm_id=alarm_id, user=request.user, alerts=alerts_shown(alerts, required=False))
    return JsonResponse(payload_to_wire(payloads.alarm_body(alarm)))


@require_POST
@api_endpoint(RESOLVE_PERMISSION)
def alarm_resolve_api(request: HttpRequest, alarm_id: int) -> JsonResponse:
    """Resolve a stuck alarm with a coded `reason`, a `note` and the `alerts` shown (audited, sent to all watching)."""
    if alarm_visible_to(request.user, alarm_id) is None:
        return not_found("alarm")
    data = request_data(request)
    alarm = alarm_resolve(alarm_id=alarm_id, user=request.user, reason=str(data.get("reason", "")),
                          note=str(data.get("note", ""))[:500], alerts=alerts_shown(data.get("alerts")))  # fmt: skip
    return JsonResponse(payload_to_wire(payloads.alarm_body(alarm)))


@require_GET
@api_endpoint()
def progress_history_api(request: HttpRequest, device_id: str) -> JsonResponse:
    """Delivered volume over time for one infusion (default: the current one), for the chart. One named by
    `infusionId` is read as the infusion is (`session_visible_to`: the ward it was given in keeps it after its pump
    moved, the pump's new ward never gets it); the current one is its pump's (`session_current`)."""
    infusion_id = request.GET.get("infusionId")
    if infusion_id:
        session = session_visible_to(request.user, infusion_id)
        session = session if session is not None and session.device.device_id == device_id else None
        if session is None and device_visible_to(request.user, device_id) is None:
            return not_found("pump")
    else:
        device = device_visible_to(request.user, device_id)
        if device is None:
            return not_found("pump")
        session = session_current(device)
    if session is None:
        return JsonResponse({"deviceId": device_id, "infusionId": None, "points": []})
    points = [sample_point(sample) for sample in progress_history(session)]
    return JsonResponse({"deviceId": device_id, "infusionId": session.infusion_id, "points": points})


@require_GET
@api_endpoint()
def device_events_api(request: HttpRequest, device_id: str) -> JsonResponse:
    """The pump's recent audit events of its present ward (`events_recent`), newest first, for the monitor's log."""
    device = device_visible_to(request.user, device_id)
    if device is None:
        return not_found("pump")
    return JsonResponse({"deviceId": device_id, "events": event_entries(events_recent(device))})


def database_away_answered(view: Callable) -> Callable:
    """The database unreachable (its restart, a failover, its host down) answered 503 with a JSON body that vouches
    for nothing, not Django's 500 page. Outermost: the sign-in check reads the session from the database first."""

    @wraps(view)
    def answered(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except DatabaseError:
            logger.warning("database unreachable: %s answered 503", request.path)
            return JsonResponse(
                {"alive": False, "brokerConnected": False, "code": "database_unavailable",
                 "message": "The server cannot read its database: monitoring cannot be vouched for."},
                status=503,
            )  # fmt: skip

    return answered


@database_away_answered
@require_GET
@api_endpoint()
def bridge_status_api(request: HttpRequest) -> JsonResponse:
    """Whether monitoring itself is alive (the bridge's heartbeat), for the "monitoring degraded" banner; 503 while the
    database cannot be read (the page then counts a failed poll, bridge_watch.js).

    `serverNow` lets each page keep its estimate of the server's clock honest (see static/js/format.js).
    """
    return JsonResponse({**bridge_status(), "serverNow": payloads.iso(timezone.now())})


@require_GET
@api_endpoint()
def infusion_detail_api(request: HttpRequest, infusion_id: str) -> JsonResponse:
    """One infusion's status and order (the waiting modal re-reads it after a lost connection), to those who may read
    it (`session_visible_to`): its pump's ward while it is on the pump, the ward it was given in once it ended."""
    session = session_visible_to(request.user, infusion_id)
    if session is None:
        return not_found("infusion")
    return JsonResponse(payload_to_wire(payloads.session_body(session)))
