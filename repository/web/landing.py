"""Public landing pages of published versions, and their file downloads.

`/records/<id>/` shows the latest published version (what the concept DOI will resolve to); every earlier
version stays reachable at `/records/<id>/versions/<n>/`. The harvesting issue adds the machine-readable
heads (Dublin Core, citation meta tags, JSON-LD, Signposting).
"""

from django.http import FileResponse, Http404
from django.shortcuts import render

from repository import storage
from repository.models import Version


def _published(record_id: str):
    return (Version.objects.filter(record__public_id=record_id, state=Version.State.PUBLISHED)
            .select_related("record").order_by("-number"))


def record_landing(request, record_id, number=None):
    versions = list(_published(record_id))
    if not versions:
        raise Http404("No published version of this record.")
    version = versions[0] if number is None else next((v for v in versions if v.number == number), None)
    if version is None:
        raise Http404("No such published version.")
    context = {
        "version": version,
        "record_id": record_id,
        "versions": versions,
        "is_latest": version.number == versions[0].number,
        "files": list(version.files.select_related("blob")),
        "run": version.runs.filter(status="finished").order_by("-finished_at").first(),
    }
    return render(request, "repository/landing.html", context)


def published_file(request, record_id, number, file_path):
    version = _published(record_id).filter(number=number).first()
    version_file = version.files.select_related("blob").filter(path=file_path).first() if version else None
    if version_file is None:
        raise Http404("No such file in a published version.")
    response = FileResponse(storage.open_blob(version_file.blob.storage_key), as_attachment=True,
                            filename=file_path.rsplit("/", 1)[-1], content_type="application/octet-stream")
    response["Content-Length"] = str(version_file.blob.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Digest"] = f"sha-256={version_file.blob.sha256}"
    return response
