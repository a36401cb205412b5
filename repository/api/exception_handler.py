"""Renders every API error once, as `application/problem+json` (RFC 9457) with field-level messages.

Shape: {"type", "title", "status", "detail", "code", "errors": [{"field": "creators[0].orcid", "messages": [...]}]}
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from repository.errors import NbarchiveError

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(*, status_code: int, code: str, title: str, detail: str,
                     field_errors: dict[str, list[str]] | None = None, headers: dict | None = None) -> Response:
    body = {
        "type": f"urn:nbarchive:problem:{code}",
        "title": title,
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if field_errors:
        body["errors"] = [{"field": field, "messages": messages} for field, messages in field_errors.items()]
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors as dicts and lists; turn them into {"a.b[0].c": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int) or str(key).isdigit():  # list items are reported keyed by index
                flat.update(flatten_errors(value, f"{prefix}[{key}]"))
                continue
            if key in ("non_field_errors", "__all__"):  # an error about the object as a whole
                flat.update(flatten_errors(value, prefix or "non_field_errors"))
                continue
            flat.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list) and detail and all(isinstance(item, (dict, list)) for item in detail):
        for index, value in enumerate(detail):
            flat.update(flatten_errors(value, f"{prefix}[{index}]"))
    elif isinstance(detail, list):
        flat[prefix or "non_field_errors"] = [str(item) for item in detail if str(item)]
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return {field: messages for field, messages in flat.items() if messages}


def problem_exception_handler(exc, context):
    if isinstance(exc, NbarchiveError):
        return problem_response(status_code=exc.status, code=exc.code, title=exc.title, detail=exc.detail,
                                field_errors=exc.field_errors)
    if isinstance(exc, RequestDataTooBig):
        # DRF reads JSON bodies through request.body, which enforces Django's DATA_UPLOAD_MAX_MEMORY_SIZE.
        return problem_response(status_code=413, code="too_large", title="Too large",
                                detail=f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
                                "metadata must be smaller (files go to the files endpoint).")
    if isinstance(exc, SuspiciousOperation):
        return problem_response(status_code=400, code="bad_request", title="Bad request", detail=str(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: let Django log it and answer 500
    headers = {name: value for name, value in response.items() if name in ("WWW-Authenticate", "Retry-After", "Allow")}
    if isinstance(exc, exceptions.ValidationError):
        return problem_response(status_code=status.HTTP_400_BAD_REQUEST, code="invalid",
                                title="The input is not valid", detail="Some fields are not valid; nothing was saved.",
                                field_errors=flatten_errors(exc.detail), headers=headers)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    return problem_response(status_code=response.status_code, code=code, title=str(exc.default_detail),
                            detail=detail, headers=headers)
