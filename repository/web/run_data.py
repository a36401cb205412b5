"""The signed, short-lived download URLs of a run's inputs (services/run_data.py): no login, the signature is the
permission. Refused links answer 403 as plain text; a CI job only needs the status.

They exist only for the GitLab runner, the one whose jobs fetch inputs from outside: repository/web/urls.py
routes them only when RUNNER=gitlab, so on any other server the URL is unknown whatever its signature, and a
leaked or forged key opens nothing."""

from django.http import FileResponse, HttpResponse
from django.views.decorators.http import require_GET

from repository.errors import NbarchiveError
from repository.services.run_data import run_data_open


@require_GET
def run_data_download(request, run_id, target_path):
    try:
        data = run_data_open(run_id=run_id, target_path=target_path, expires=request.GET.get("expires", ""),
                             signature=request.GET.get("signature", ""))
    except NbarchiveError as exc:
        return HttpResponse(exc.detail, status=exc.status, content_type="text/plain; charset=utf-8")
    response = FileResponse(data.stream, as_attachment=True, filename=data.filename,
                            content_type="application/octet-stream")
    response["Content-Length"] = str(data.size)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response
