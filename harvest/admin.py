"""Admin for harvest sources and what they gave. Harvested records are read-only: only a harvest writes them."""

from django.contrib import admin

from harvest.models import HarvestedRecord, HarvestSource


@admin.register(HarvestSource)
class HarvestSourceAdmin(admin.ModelAdmin):
    list_display = ["base_url", "repository_name", "set_spec", "metadata_prefix", "harvested_until", "last_run_at",
                    "last_run_outcome"]
    search_fields = ["base_url", "repository_name"]
    readonly_fields = ["repository_name", "granularity", "last_run_at", "last_run_outcome", "created", "updated"]


@admin.register(HarvestedRecord)
class HarvestedRecordAdmin(admin.ModelAdmin):
    list_display = ["oai_identifier", "title", "doi", "publication_year", "deleted", "datestamp", "source"]
    list_filter = ["deleted", "source", "resource_type"]
    search_fields = ["oai_identifier", "doi", "title"]
    ordering = ["source", "oai_identifier"]
    list_select_related = ["source"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
