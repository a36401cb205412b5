"""Django admin for every model. Bytes and the audit trail are read-only here: they change only via services."""

from django.contrib import admin

from repository.models import (
    AccessToken,
    AuditEvent,
    Blob,
    Creator,
    DataReference,
    DoiOutbox,
    LocalDoi,
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
    readonly_fields = ["public_id", "concept_doi", "created", "updated"]


@admin.register(Version)
class VersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "title", "state", "doi", "updated"]
    list_filter = ["state", "resource_type"]
    search_fields = ["title", "record__public_id", "doi"]
    readonly_fields = ["record", "number", "state", "doi", "created_by", "created", "updated", "submitted_at",
                       "published_at", "withdrawn_at", "withdrawal_reason"]
    inlines = [CreatorInline, RelatedIdentifierInline, DataReferenceInline, VersionFileInline]

    def has_change_permission(self, request, obj=None):
        # Accepted versions change only through services (audited corrections re-sent to DataCite, withdrawal).
        if obj is not None and obj.state in Version.ACCEPTED_STATES:
            return False
        return super().has_change_permission(request, obj)


@admin.register(DoiOutbox)
class DoiOutboxAdmin(ReadOnlyAdmin):
    list_display = ["doi", "kind", "wanted_state", "registrar_state", "is_pending", "needs_attention", "attempts",
                    "next_attempt_at", "synced_at"]
    list_filter = ["needs_attention", "wanted_state", "registrar_state", "kind"]
    search_fields = ["doi", "record__public_id"]
    actions = ["sync_again"]

    @admin.display(boolean=True)
    def is_pending(self, obj):
        return obj.is_pending

    @admin.action(description="Sync the selected DOIs with the registrar again now")
    def sync_again(self, request, queryset):
        from repository.services.dois import doi_resync

        count = doi_resync(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} DOI(s) scheduled for a sync.")


@admin.register(LocalDoi)
class LocalDoiAdmin(ReadOnlyAdmin):
    list_display = ["doi", "state", "url", "updated"]
    list_filter = ["state"]
    search_fields = ["doi"]


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

