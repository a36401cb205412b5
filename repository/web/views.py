"""Placeholder views; the deposit UI is built next."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


def home(request):
    return HttpResponse("nbarchive")


@login_required
def my_uploads(request):
    return HttpResponse("uploads")


draft_new = draft_detail = draft_edit = draft_file_delete_view = tokens = my_uploads
