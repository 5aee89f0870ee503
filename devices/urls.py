"""Clinicians' pages."""

from django.urls import path

from devices import views

app_name = "devices"

urlpatterns = [
    path("", views.ward_overview, name="ward_overview"),
]
