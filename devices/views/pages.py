"""Server-rendered pages: the ward overview, the pump monitor and the start-infusion wizard."""

from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from devices.access_selectors import devices_for_overview
from devices.forms import CONFIRM_WORD
from devices.models import Device
from devices.selectors import (
    alarms_active_by_device,
    bridge_status,
    device_visible_to,
    sessions_current_by_device,
    wards_visible_to,
)
from devices.services.clearing_stops import TOLD_TO_CLEAR
from devices.services.silences import SILENCE_PERMISSION
from devices.silence_selectors import ward_silences_current
from devices.states import AlarmResolveReason
from devices.templatetags.units import span
from devices.views.monitor_before_live import alarms_shown, monitor_before_live
from devices.views.overview_before_live import SUMMARY_PARTS, alarm_strip, station_before_live, summary_before_live
from devices.views.presenters import monitor_state, page_settings, pump_summary
from devices.ward_payloads import silence_body
from protocol.payload_codec import payload_to_wire

COMMAND_PERMISSION = "devices.command_device"
ACKNOWLEDGE_PERMISSION = "devices.acknowledge_alarm"
RESOLVE_PERMISSION = "devices.resolve_alarm"
SOUNDED = ("high", "medium")  # the alarms the monitor sounds (static/js/alarm_audio.js `update`)


@login_required
def ward_overview(request: HttpRequest) -> HttpResponse:
    """Every pump of the user's wards (optionally one ward), updated live by the ward feed."""
    wards = list(wards_visible_to(request.user))
    ward_code = request.GET.get("ward", "")
    if ward_code not in {ward.code for ward in wards}:
        ward_code = ""
    devices = devices_for_overview(request.user, ward_code=ward_code)
    sessions, alarms = sessions_current_by_device(devices), alarms_active_by_device(devices)
    pumps = [pump_summary(device, sessions.get(device.pk), alarms.get(device.pk, [])) for device in devices]
    bridge = bridge_status()
    can_silence = request.user.has_perm(SILENCE_PERMISSION)
    shown_wards = [ward.code for ward in wards if ward.code == ward_code or not ward_code]
    silences = wards_silenced(shown_wards, timezone.now())
    context = {
        "pumps": pumps,
        **_overview_before_live(pumps, devices, alarms, silences, wards=shown_wards, bridge=bridge),
        "wards": wards,
        "ward_code": ward_code,
        "heading": _ward_heading(wards, ward_code),
        "bridge": bridge,
        "page": {
            **page_settings(),
            "ward": ward_code or "*",
            "bridge": bridge,
            "wards": shown_wards,
            # the wards' silences on now, as the feed sends them on subscribing: the station shows them at once
            "silences": silences,
            "summaryParts": SUMMARY_PARTS,
            # view-only wall screens may not silence the ward: their button silences that screen only
            "canSilence": can_silence,
            "silenceS": settings.PUMPSTREAM["WARD_SILENCE_DEFAULT_S"],
        },
        "silence_label": silence_label(settings.PUMPSTREAM["WARD_SILENCE_DEFAULT_S"]),
        "silence_max_s": round(settings.PUMPSTREAM["WARD_SILENCE_MAX_S"]),
        "can_silence": can_silence,
    }
    return render(request, "devices/ward_overview.html", context)


def _overview_before_live(
    pumps: list[dict], devices: list[Device], alarms: dict[int, list], silences: list[dict], *, wards: list[str],
    bridge: dict,
) -> dict:  # fmt: skip
    """The overview's cards, counts and station as its scripts first render them, before the page is live
    (devices/views/overview_before_live.py): nothing moves as they take over."""
    now = timezone.now()
    cards = [
        (pump, {**card_before_live(pump["connectivity"], device.last_seen_at, now), "alarm": alarm_strip(pump, now)})
        for pump, device in zip(pumps, devices, strict=True)
    ]
    every_alarm = [alarm for listed in alarms.values() for alarm in listed]
    degraded = not (bridge["alive"] and bridge["brokerConnected"])  # bridge_watch.js tells the script at once
    return {
        "cards": cards,
        "summary": summary_before_live(pumps, [shown["connectivity"] for _, shown in cards]),
        "station": station_before_live(pumps, every_alarm, silences, wards=wards, degraded=degraded, now=now),
    }


def wards_silenced(codes: list[str], now: datetime) -> list[dict]:
    """The `ward:silence` body of each of these wards' silence on now, by ward code (as the ward feed sends them)."""
    current = ward_silences_current(codes=set(codes), now=now)
    return [payload_to_wire(silence_body(code, silence, now=now)) for code, silence in sorted(current.items())]


# A pump's condition as the cards name it when they cannot say it is online (static/js/format.js CONDITION).
NOT_HEARD_HERE = {"stale": ("Stale", "?"), "offline": ("Offline", "\u2715"), "unknown": ("Never heard", "\u2013")}


def card_before_live(connectivity: str | None, last_seen_at: datetime | None, now: datetime) -> dict:
    """A pump's card as static/js/overview.js renders it before the page is live, the page as the server renders it
    being never live: offline or never heard as the server knows it, else not heard here (`heardHere`: "Stale", never
    "online" nor "running"), and when it was last heard in the script's words (format.js `lastHeard`). Before, the
    server's card said "online" and "running" on a green edge until the script ran, and for good had it failed (review
    42, finding 6); its "Last heard 2026-12-06T17:17:48.032364+00:00" took two lines where the script's took one."""
    shown = connectivity if connectivity in ("offline", "unknown") else "stale" if connectivity else "unknown"
    label, symbol = NOT_HEARD_HERE[shown]
    heard = f"Last heard {span((now - last_seen_at).total_seconds())} ago" if last_seen_at else "Never heard"
    return {"connectivity": shown, "label": label, "symbol": symbol, "lastHeard": heard}


def silence_label(seconds: float) -> str:
    """How long the silence button silences, as its label says it ("2 min", "90 s"): the configured default."""
    whole = round(seconds)
    return f"{whole // 60} min" if whole % 60 == 0 else f"{whole} s"


def _ward_heading(wards: list, ward_code: str) -> str:
    """The ward the page shows by name ("All my wards" when it shows several)."""
    shown = [ward for ward in wards if ward.code == ward_code] if ward_code else wards
    return shown[0].name if len(shown) == 1 else "All my wards"


def _visible_device_or_404(request: HttpRequest, device_id: str) -> Device:
    device = device_visible_to(request.user, device_id)
    if device is None:
        raise Http404("No such pump in your wards")
    return device


def _monitor_context(request: HttpRequest, device: Device) -> dict:
    user = request.user
    bridge = bridge_status()
    monitor, now = monitor_state(device), timezone.now()
    status = monitor["status"] or {}
    return {
        "device": device,
        "bridge": bridge,
        "can_command": user.has_perm(COMMAND_PERMISSION),
        "can_acknowledge": user.has_perm(ACKNOWLEDGE_PERMISSION),
        "can_resolve": user.has_perm(RESOLVE_PERMISSION),
        # the monitor as its script first renders it, before the page is live (devices/views/monitor_before_live.py)
        "heard": card_before_live(status.get("connectivity"), device.last_seen_at, now),
        "shown": monitor_before_live(monitor),
        "alarms_shown": alarms_shown(monitor["alarms"], now),
        "sounding": any(not alarm["acknowledged"] and alarm["priority"] in SOUNDED for alarm in monitor["alarms"]),
        "page": {
            **page_settings(),
            "monitor": monitor,
            "bridge": bridge,
            "canCommand": user.has_perm(COMMAND_PERMISSION),
            "canAcknowledge": user.has_perm(ACKNOWLEDGE_PERMISSION),
            "canResolve": user.has_perm(RESOLVE_PERMISSION),
            "resolveReasons": [{"value": value, "label": label} for value, label in AlarmResolveReason.choices],
        },
    }


@login_required
def device_monitor(request: HttpRequest, device_id: str) -> HttpResponse:
    """One pump live: progress, chart, alarms, controls and the recent event log."""
    device = _visible_device_or_404(request, device_id)
    return render(request, "devices/monitor.html", _monitor_context(request, device))


@login_required
def infusion_start_page(request: HttpRequest, device_id: str) -> HttpResponse:
    """The start wizard (patient, infusion, review) with the waiting modal; becomes the monitor when confirmed."""
    device = _visible_device_or_404(request, device_id)
    context = _monitor_context(request, device)
    context["confirm_word"] = CONFIRM_WORD
    context["page"]["toldToClear"] = TOLD_TO_CLEAR  # the waiting window says what became of that STOP instead
    status = 200 if context["can_command"] else 403
    return render(request, "devices/start.html", context, status=status)
