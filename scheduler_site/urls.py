from __future__ import annotations

from django.urls import path

from scheduler_site.api import alias_api, api

urlpatterns = [
    path("api/", api.urls),
    path("", alias_api.urls),
]
