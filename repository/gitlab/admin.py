"""Django admin of the GitLab app: links and imports, read-only (they change through the API and the webhook)."""

from django.contrib import admin

from repository.admin import ReadOnlyAdmin
from repository.gitlab.models import GitLabImport, GitLabLink


@admin.register(GitLabLink)
class GitLabLinkAdmin(ReadOnlyAdmin):
    list_display = ["record", "project_path", "project_id", "created_by", "updated"]
    list_select_related = ["record", "created_by"]
    search_fields = ["record__public_id", "project_path"]
    exclude = ["webhook_secret_hash"]


@admin.register(GitLabImport)
class GitLabImportAdmin(ReadOnlyAdmin):
    list_display = ["record", "ref", "status", "source", "version", "created", "finished_at"]
    list_filter = ["status", "source"]
    list_select_related = ["record", "version"]
    search_fields = ["record__public_id", "ref", "sha"]
