from __future__ import annotations

from django.urls import include, path

from scheduler_site.api import alias_api, api

urlpatterns = [
    path("api/", api.urls),
    # The dashboard comes before the alias API: django-ninja always adds a
    # root view ("") to an API, which would otherwise answer "/" with a 404.
    path("", include("tasks.urls")),
    path("", alias_api.urls),
]
