"""The notebook of a published version, read in the browser: the same sanitised rendering moderators see.

`/records/<id>/versions/<n>/notebook/` serves the rendered page with repository.rendering's headers (a CSP that
allows no script and sandboxes the document, so it runs in an opaque origin and can never read this site's
cookies, even if opened on its own); the landing page embeds it in an `<iframe sandbox>` without
`allow-same-origin` or `allow-scripts`, next to a table of contents of its headings and a download link.

The rendering is cached by the notebook blob's sha256 (repository.rendering.pages): a published version's files
never change, so that is a cache per version that nothing has to invalidate; a correction that names another
notebook names another blob. The table of contents is cached by the same key.
"""

from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_safe

from repository import rendering, selectors
from repository.access.http import request_can_read_files
from repository.access.serving import closed_files_message, files_cache_control
from repository.errors import NotFound
from repository.models import Version, VersionFile
from repository.rendering.toc import Heading, headings

TOC_CACHE_SECONDS = 7 * 24 * 3600


def notebook_file(version: Version, files: list[VersionFile] | None = None) -> VersionFile | None:
    """The version's notebook (with its blob), or None when it names none that it has."""
    if not version.notebook_path:
        return None
    if files is not None:
        return next((f for f in files if f.path == version.notebook_path), None)
    return version.files.select_related("blob").filter(path=version.notebook_path).first()


@require_safe
@xframe_options_sameorigin
def version_notebook(request, record_id, number):
    """The rendered notebook of a published version, for the landing page's `<iframe sandbox>`."""
    try:
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    notebook = notebook_file(version) if version.state != Version.State.WITHDRAWN else None
    if version.state != Version.State.WITHDRAWN and not request_can_read_files(request, version):
        # Closed files: 403 (repository.access.serving), in the frame's own words; nothing is rendered.
        page = rendering.RenderedPage(rendering.error_page(closed_files_message(version)), 403)
    elif notebook is None:
        message = ("This version was withdrawn; its files are no longer served." if version.state ==
                   Version.State.WITHDRAWN else "This version has no notebook to show.")
        page = rendering.RenderedPage(rendering.error_page(message),
                                      410 if version.state == Version.State.WITHDRAWN else 404)
    else:
        page = rendering.rendered_page(notebook.blob)
    response = HttpResponse(page.html, status=page.status, content_type="text/html; charset=utf-8")
    for header, value in rendering.RESPONSE_HEADERS.items():
        response[header] = value
    if page.status == 200:
        # Open files: kept by browsers and proxies for up to an hour (a withdrawal is seen within the hour);
        # closed ones, served to those who may read them, never by a shared cache.
        response["Cache-Control"] = files_cache_control(version)
    elif page.status == 503:
        response["Retry-After"] = "60"
    return response


def notebook_toc(notebook: VersionFile) -> list[Heading]:
    """The headings of the rendered notebook; empty when it cannot be rendered or is not rendered yet.

    The landing page never waits for the render worker: the frame's own request renders the notebook (usually
    long before, when a moderator opened it: the cache is shared), and the next view of the page has the table.
    """
    key = f"notebook-toc:v{rendering.RENDERER_VERSION}:{notebook.blob.sha256}"
    cached = cache.get(key)
    if cached is not None:
        return [Heading(*entry) for entry in cached]
    page = rendering.cached_page(notebook.blob)
    if page is None or page.status == 503:
        return []  # not rendered yet, or a timeout that will be tried again
    entries = headings(page.html) if page.status == 200 else []
    cache.set(key, [(h.level, h.anchor, h.text) for h in entries], TOC_CACHE_SECONDS)
    return entries


def notebook_panel(version: Version, files: list[VersionFile]) -> dict | None:
    """What the landing page shows of the notebook: where the frame loads it from, its headings (each a link
    that opens the frame at that heading) and its download link; None when the version names no notebook."""
    notebook = notebook_file(version, files)
    if notebook is None:
        return None
    kwargs = {"record_id": version.record.public_id, "number": version.number}
    frame_url = reverse("repository:version_notebook", kwargs=kwargs)
    return {
        "path": notebook.path,
        "size": notebook.blob.size,
        "frame_url": frame_url,
        "download_url": reverse("repository:published_file", kwargs={**kwargs, "file_path": notebook.path}),
        "toc": [{"level": h.level, "text": h.text, "url": f"{frame_url}#{h.anchor}"} for h in notebook_toc(notebook)],
    }
