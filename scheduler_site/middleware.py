"""The site's own middleware: JSON errors for the API, no caching for the
dashboard."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers

MESSAGES = {404: "Not Found", 405: "Method not allowed"}


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path.rstrip("/") == "/schedule-task"


class ApiJsonErrorsMiddleware:
    """JSON for the JSON API's answers that Django and ninja give as text or
    HTML: a path under /api/ that does not exist (404) and a method a route
    does not take (405, its Allow header kept). The dashboard is left alone."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code in MESSAGES
            and _is_api(request.path_info)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            answer = JsonResponse(
                {"detail": MESSAGES[response.status_code]}, status=response.status_code
            )
            if response.has_header("Allow"):
                answer["Allow"] = response["Allow"]
            return answer
        return response


class DashboardCacheMiddleware:
    """Dashboard pages show live state and an operator's data: never cached,
    and varying with the session and with htmx's partial requests. (Static
    files never get here: WhiteNoise answers them first.)"""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not _is_api(request.path_info):
            add_never_cache_headers(response)
            patch_vary_headers(response, ["HX-Request", "Cookie"])
        return response
