"""JSON for the JSON API's answers that Django and ninja give as text or
HTML: a path under /api/ that does not exist (404) and a method a route does
not take (405, its Allow header kept). The dashboard's pages are left alone."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase, JsonResponse

from tasks.aws import storage_unreachable

MESSAGES = {404: "Not Found", 405: "Method not allowed"}


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path.rstrip("/") == "/schedule-task"


class ApiJsonErrorsMiddleware:
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


UNAVAILABLE = "the task store is unreachable; try again in a moment"


class StorageUnavailableMiddleware:
    """A 503, never a 500 page, while the task store cannot be reached: JSON
    `{"detail": ...}` for the API, a short page for the dashboard."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponseBase | None:
        if not storage_unreachable(exc):
            return None
        if _is_api(request.path_info):
            answer = JsonResponse({"detail": UNAVAILABLE}, status=503)
        else:
            from django.shortcuts import render

            answer = render(request, "tasks/unavailable.html", {"message": UNAVAILABLE}, status=503)
        answer["Retry-After"] = "2"
        return answer
