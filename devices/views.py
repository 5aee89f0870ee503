"""Server-rendered pages for clinicians; state changes go through services."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from devices.selectors import bridge_status, devices_visible_to


@login_required
def ward_overview(request: HttpRequest) -> HttpResponse:
    """Every pump of the user's wards."""
    devices = devices_visible_to(request.user).order_by("ward__code", "device_id")
    return render(request, "devices/ward_overview.html", {"devices": devices, "bridge": bridge_status()})
