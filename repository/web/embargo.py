"""The landing page's "Lift the embargo now": an owner or admin opens an embargoed version's files early
(services/embargoes.py; audited, DataCite and harvesters told)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from repository import selectors
from repository.errors import NbarchiveError, NotFound
from repository.permissions import can_correct_metadata
from repository.services.embargoes import embargo_lift


@login_required
@require_POST
def version_embargo_lift(request, record_id, number):
    try:
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    if not can_correct_metadata(request.user, version.record):
        raise Http404("No published version whose embargo you can lift.")  # no hint that it is under embargo
    try:
        embargo_lift(version=version, actor=request.user)
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"The embargo was lifted: the files of version {number} are open to everyone. "
                                  "The DOI metadata is being updated.")
    return redirect("repository:version_landing", record_id=record_id, number=number)
