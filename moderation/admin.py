"""Admins assign moderators to communities here; requests and their timelines are read-only."""

from django.contrib import admin

from moderation.models import Community, ReviewEvent, ReviewRequest


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "review_corrections", "created"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["moderators"]


class ReviewEventInline(admin.TabularInline):
    model = ReviewEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "actor", "from_state", "to_state", "comment", "created"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ReviewRequest)
class ReviewRequestAdmin(admin.ModelAdmin):
    list_display = ["__str__", "community", "state", "submitted_by", "created"]
    list_filter = ["state", "community"]
    readonly_fields = ["version", "community", "submitted_by", "state", "checklist", "created", "updated", "closed_at"]
    inlines = [ReviewEventInline]

    def has_add_permission(self, request):
        return False


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    list_display = ["request", "kind", "actor", "from_state", "to_state", "created"]
    readonly_fields = ["request", "kind", "actor", "from_state", "to_state", "comment", "data", "created"]
