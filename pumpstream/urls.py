"""URL routes: sign-in, the admin, the clinicians' pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from pumpstream import ops

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the admin): no 404 there either.
    path(
        "favicon.ico", RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"), permanent=False), name="favicon"
    ),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("ops/", ops.operations_page, name="operations"),
    path("ops/status.json", ops.operations_status, name="operations_status"),
    path("", include("devices.urls")),
]
