"""Error pages: problem+json under /api/, HTML elsewhere, so API clients never parse an HTML 404."""

from django.http import JsonResponse
from django.shortcuts import render


def _wants_problem_json(request) -> bool:
    return request.path.startswith("/api/")


def _problem(status: int, code: str, title: str, detail: str) -> JsonResponse:
    return JsonResponse({"type": f"urn:nbarchive:problem:{code}", "title": title, "status": status,
                         "detail": detail, "code": code}, status=status, content_type="application/problem+json")


def not_found(request, exception=None):
    if _wants_problem_json(request):
        return _problem(404, "not_found", "Not found", f"Nothing is at {request.path}.")
    return render(request, "404.html", status=404)


def server_error(request):
    if _wants_problem_json(request):
        return _problem(500, "server_error", "Server error", "Something failed on our side; it has been logged.")
    return render(request, "500.html", status=500)
