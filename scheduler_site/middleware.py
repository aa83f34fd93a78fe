"""The site's own middleware: JSON errors for the API, the refusal of request
bodies without a length, and no caching for the dashboard."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
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


class RefuseChunkedBodiesMiddleware:
    """Request bodies need a Content-Length: one sent with Transfer-Encoding
    (chunked) is refused with 411, and one that has both with 400 (the shape
    of request smuggling, RFC 9112 6.1), before anything reads the body.

    On Lambda, API Gateway reassembles a chunked body and Zappa gives the app
    its length, so a Transfer-Encoding header there is left alone. The local
    server (werkzeug) would hand Django a chunked stream without a length,
    which Django reads as empty ("Field required"), or with a length the
    chunks do not match (a 500): refusing it is the honest answer."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "HTTP_TRANSFER_ENCODING" not in request.META or "lambda.context" in request.META:
            return self.get_response(request)
        if request.META.get("CONTENT_LENGTH"):
            status = 400
            detail = "a request may not carry both Transfer-Encoding and Content-Length"
        else:
            status = 411
            detail = (
                "chunked request bodies are not accepted; send the body with a "
                "Content-Length header"
            )
        if _is_api(request.path_info):
            return JsonResponse({"detail": detail}, status=status)
        return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")


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
