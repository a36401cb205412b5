"""Django admin for every model. Bytes and the audit trail are read-only here: they change only via services."""

from django.contrib import admin

from repository.models import (
    AccessToken,
    AuditEvent,
    Blob,
    Creator,
    DataReference,
    Record,
    RelatedIdentifier,
    Version,
    VersionFile,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CreatorInline(admin.TabularInline):
    model = Creator
    extra = 0


class RelatedIdentifierInline(admin.TabularInline):
    model = RelatedIdentifier
    extra = 0


class DataReferenceInline(admin.TabularInline):
    model = DataReference
    extra = 0


class VersionFileInline(admin.TabularInline):
    model = VersionFile
    extra = 0
    readonly_fields = ["path", "blob", "created"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ["public_id", "concept_doi", "created"]
    search_fields = ["public_id", "concept_doi", "owners__username"]
    filter_horizontal = ["owners"]
    readonly_fields = ["public_id", "created", "updated"]


@admin.register(Version)
class VersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "title", "state", "doi", "updated"]
    list_filter = ["state", "resource_type"]
    search_fields = ["title", "record__public_id", "doi"]
    readonly_fields = ["record", "number", "state", "doi", "created_by", "created", "updated", "submitted_at",
                       "published_at"]
    inlines = [CreatorInline, RelatedIdentifierInline, DataReferenceInline, VersionFileInline]


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ["sha256", "size", "storage_key", "created"]
    search_fields = ["sha256", "md5", "storage_key"]


@admin.register(VersionFile)
class VersionFileAdmin(ReadOnlyAdmin):
    list_display = ["path", "version", "blob"]
    search_fields = ["path", "version__record__public_id"]


@admin.register(Creator)
class CreatorAdmin(admin.ModelAdmin):
    list_display = ["name", "orcid", "affiliation", "version"]
    search_fields = ["name", "orcid"]


@admin.register(RelatedIdentifier)
class RelatedIdentifierAdmin(admin.ModelAdmin):
    list_display = ["identifier", "scheme", "relation", "version"]


@admin.register(DataReference)
class DataReferenceAdmin(admin.ModelAdmin):
    list_display = ["kind", "identifier", "target_path", "version"]
    list_filter = ["kind"]


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created", "last_used", "revoked_at"]
    readonly_fields = ["token_hash", "prefix", "created", "last_used"]
    search_fields = ["name", "user__username", "prefix"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created", "action", "actor", "record", "version"]
    list_filter = ["action"]
    search_fields = ["record__public_id", "actor__username"]
