"""Static file storages whose URLs carry the request's script prefix.

Behind API Gateway the app lives under /<stage> (SCRIPT_NAME), and Django
prefixes a relative STATIC_URL with the script prefix. But Django caches
settings.STATIC_URL with the prefix of its first read, and WhiteNoise reads it
at startup, before any request has set one: every {% static %} URL would then
miss the stage. These storages prefix the configured value on each use.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.storage import StaticFilesStorage
from django.urls import get_script_prefix
from whitenoise.storage import CompressedManifestStaticFilesStorage


def static_url() -> str:
    # The configured value, not LazySettings' cached, already-prefixed one.
    configured = settings._wrapped.STATIC_URL
    if configured.startswith(("http://", "https://", "/")):
        return configured
    return f"{get_script_prefix()}{configured}"


class _ScriptPrefixMixin:
    @property
    def base_url(self) -> str:
        return static_url()


class ManifestStorage(_ScriptPrefixMixin, CompressedManifestStaticFilesStorage):
    """Production: hashed, compressed files, served by WhiteNoise."""


class PlainStorage(_ScriptPrefixMixin, StaticFilesStorage):
    """DEBUG: files as they are."""
