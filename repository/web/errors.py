"""Error pages: problem+json under /api/, HTML elsewhere, so API clients never parse an HTML 404.

A database that refuses connections, or an SQLite file busy past its timeout, is a passing condition of the
server, not a bug: every part answers 503 with Retry-After in its own language (problem+json for the API, plain
text for OAI-PMH harvesters, an HTML page for people). Views' errors are caught by DatabaseUnavailableMiddleware;
errors raised by other middleware (a session saved after the view) reach `server_error`, which tells them apart.
"""

import logging
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# What the database driver raises when it cannot serve a request right now (connection refused or lost, server
# shutting down, "database is locked", a deadlock): transient, so worth a retry. Programming and integrity errors
# are bugs and stay 500s.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)


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
    if isinstance(sys.exception(), DATABASE_UNAVAILABLE_ERRORS):
        return database_unavailable(request)
    if _wants_problem_json(request):
        return _problem(500, "server_error", "Server error", "Something failed on our side; it has been logged.")
    return render(request, "500.html", status=500)


def database_unavailable(request) -> HttpResponse:
    """503 with Retry-After, shaped for whoever asked."""
    retry_after = settings.DATABASE_RETRY_AFTER
    if _wants_problem_json(request):
        response = _problem(503, "database_unavailable", "The database is not available",
                            f"The request could not be completed; please try again in {retry_after} seconds.")
    elif request.path == "/oai" or request.path.startswith("/oai/"):
        # Harvesters log the body of a failed request: one plain line, not an HTML page.
        response = HttpResponse(f"503 Service Unavailable: the repository's database is not available; retry after "
                                f"{retry_after} seconds.\n", status=503, content_type="text/plain; charset=utf-8")
    else:
        # Rendered without the request: context processors would ask the database for the user.
        response = HttpResponse(render_to_string("503.html", {"retry_after": retry_after}), status=503)
    response["Retry-After"] = str(retry_after)
    return response


class DatabaseUnavailableMiddleware:
    """Turns a view's database outage into `database_unavailable` (also with DEBUG on, where no handler500 runs)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE_ERRORS):
            return None
        logger.error("The database could not serve %s %s: %s", request.method, request.path, exception)
        return database_unavailable(request)
