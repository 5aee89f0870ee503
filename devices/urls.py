"""Clinicians' pages and the JSON endpoints they call."""

from django.urls import path

from devices.views import api, pages

app_name = "devices"

urlpatterns = [
    path("", pages.ward_overview, name="ward_overview"),
    path("devices/<str:device_id>/", pages.device_monitor, name="monitor"),
    path("devices/<str:device_id>/start/", pages.infusion_start_page, name="start"),
    path("api/devices/<str:device_id>/infusions/", api.infusion_start_api, name="api_infusion_start"),
    path("api/devices/<str:device_id>/starts/<str:key>/", api.infusion_placed_api, name="api_infusion_placed"),
    path("api/devices/<str:device_id>/commands/", api.infusion_command_api, name="api_infusion_command"),
    path("api/devices/<str:device_id>/history/", api.progress_history_api, name="api_history"),
    path("api/devices/<str:device_id>/events/", api.device_events_api, name="api_events"),
    path("api/infusions/<str:infusion_id>/", api.infusion_detail_api, name="api_infusion"),
    path("api/infusions/<str:infusion_id>/cancel/", api.infusion_cancel_api, name="api_infusion_cancel"),
    path("api/infusions/<str:infusion_id>/end-record/", api.infusion_record_end_api, name="api_infusion_record_end"),
    path("api/bridge/", api.bridge_status_api, name="api_bridge"),
    path("api/alarms/<int:alarm_id>/acknowledge/", api.alarm_acknowledge_api, name="api_alarm_acknowledge"),
    path("api/alarms/<int:alarm_id>/resolve/", api.alarm_resolve_api, name="api_alarm_resolve"),
]
