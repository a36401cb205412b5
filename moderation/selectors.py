"""Reads for moderation: queues, a request with what a decision needs, its timeline."""

from collections import defaultdict
from collections.abc import Collection
from datetime import timedelta

from django.db.models import CharField, Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from moderation.models import Community, ReviewEvent, ReviewRequest
from moderation.permissions import can_view_request, is_global_moderator
from repository.errors import InvalidInput, NotFound
from repository.models import AuditEvent, ExecutionRun, SearchDocument
from repository.querying import AnyOf, SpaceSeparated
from repository.selectors import changed_fields
from repository.services.file_access import access_in_words


def requests_visible_to(user) -> QuerySet[ReviewRequest]:
    """Moderators: every request of their communities; everyone: the requests of their own records."""
    requests = ReviewRequest.objects.select_related("version__record", "community", "submitted_by")
    if is_global_moderator(user):
        return requests
    return requests.filter(Q(community__moderators=user) | Q(version__record__owners=user)).distinct()


# A queue filter older than a century is no filter at all; the bound keeps now - older_than inside the calendar
# (99999999999 days is an OverflowError).
MAX_OLDER_THAN_DAYS = 36_500


def older_than_days_parse(value: str | None) -> int | None:
    """The queue's `older_than` filter (whole days); None when absent. Raises InvalidInput naming the field."""
    value = (value or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 6 or int(value) > MAX_OLDER_THAN_DAYS:
        raise InvalidInput(f"older_than must be a whole number of days from 0 to {MAX_OLDER_THAN_DAYS}.",
                           field_errors={"older_than": [f"A whole number of days from 0 to {MAX_OLDER_THAN_DAYS}."]})
    return int(value)


def request_queue(*, user, state: str | None = None, community: str | None = None, verdict: str | None = None,
                  older_than_days: int | None = None, open_only: bool = True,
                  order: str = "-created") -> QuerySet[ReviewRequest]:
    requests = requests_visible_to(user)
    if older_than_days:
        requests = requests.filter(created__lte=timezone.now() - timedelta(days=older_than_days))
    if open_only and not state:
        requests = requests.filter(state__in=ReviewRequest.OPEN_STATES)
    if state:
        requests = requests.filter(state=state)
    if community:
        requests = requests.filter(community__slug=community)
    if verdict:
        latest = ExecutionRun.objects.filter(version=OuterRef("version")).order_by("-queued_at", "-id")
        requests = requests.annotate(latest_verdict=Subquery(latest.values("verdict")[:1])).filter(
            latest_verdict=verdict)
    allowed = {"created", "-created", "updated", "-updated"}
    return requests.order_by(order if order in allowed else "-created", "-id")


def request_get_for_user(*, request_id, user) -> ReviewRequest:
    review = ReviewRequest.objects.select_related("version__record", "community", "submitted_by").filter(
        pk=request_id).first()
    if review is None or not can_view_request(user, review):
        raise NotFound("No review request with this id that you can see.")
    return review


def request_latest_for_version(version) -> ReviewRequest | None:
    """The version's most recent review request, open or not (the core's `hooks.review_of`)."""
    return version.review_requests.order_by("-created").first()


def moderators_of_version(version) -> list:
    """The moderators of the communities the version was submitted to (the core's `hooks.moderators_of`)."""
    from django.contrib.auth import get_user_model

    return list(get_user_model().objects.filter(moderated_communities__review_requests__version=version, is_active=True)
                .distinct())


def request_timeline(review: ReviewRequest) -> list[dict]:
    """State changes and comments, with the verification runs of the version merged in by time."""
    entries = [
        {"kind": event.kind, "created": event.created, "actor": event.actor.get_username() if event.actor else None,
         "from_state": event.from_state, "to_state": event.to_state, "comment": event.comment}
        for event in ReviewEvent.objects.filter(request=review).select_related("actor")
    ]
    # Every run of the version: ones the author started before submitting are part of the story too.
    runs = ExecutionRun.objects.filter(version=review.version).defer("logs", "report")
    for run in runs:
        entries.append({"kind": ReviewEvent.Kind.VERIFICATION, "created": run.finished_at or run.queued_at,
                        "actor": None, "from_state": "", "to_state": "", "run_id": str(run.run_id),
                        "status": run.status, "verdict": run.verdict, "comment": run.message})
    # Corrections of the version once published: owners make them at once, moderators see each one here.
    corrections = AuditEvent.objects.filter(version=review.version, action="version.correct").select_related("actor")
    for event in corrections:
        entries.append({"kind": "correction", "created": event.created,
                        "actor": event.actor.get_username() if event.actor else None, "from_state": "", "to_state": "",
                        "fields": event.data.get("fields") or changed_fields(event.data.get("before") or {},
                                                                              event.data.get("after") or {}),
                        "changes": _correction_changes(event.data), "comment": event.data.get("reason", "")})
    return sorted(entries, key=lambda entry: entry["created"])


def _correction_changes(data: dict) -> list[dict]:
    before, after = data.get("before") or {}, data.get("after") or {}
    return [{"field": field, "before": readable_change(field, before.get(field)),
             "after": readable_change(field, after.get(field))} for field in changed_fields(before, after)]


def readable_change(field: str, value):
    """A correction's value as moderators read it: an access in words, anything else as it is."""
    return access_in_words(value) if field == "access" and isinstance(value, dict) else value


# --- communities, as OAI-PMH sets see them ------------------------------------------------------------------

def communities_list() -> list[tuple[str, str]]:
    """(slug, name) of every community, by slug."""
    return list(Community.objects.order_by("slug").values_list("slug", "name"))


def versions_accepted_by(community_slug: str | None = None) -> Q:
    """A filter on Version: accepted through the review of that community (of any community when None)."""
    accepted = ReviewRequest.objects.filter(version=OuterRef("pk"), state=ReviewRequest.State.ACCEPTED)
    if community_slug:
        accepted = accepted.filter(community__slug=community_slug)
    return Q(Exists(accepted))


def community_slugs_accepting(version_ids: Collection[int]) -> dict[int, set[str]]:
    """{version id: slugs of the communities that accepted it} for the versions given, in one query."""
    slugs = defaultdict(set)
    accepted = ReviewRequest.objects.filter(AnyOf(F("version_id"), set(version_ids)),
                                            state=ReviewRequest.State.ACCEPTED)
    for version_id, slug in accepted.order_by().values_list("version_id", "community__slug"):
        slugs[version_id].add(slug)
    return slugs


def community_slugs_accepting_column() -> Subquery:
    """community_slugs_accepting as a column of a Version query: the slugs of the communities that accepted the
    version, space-separated in no particular order, or None. Lets a page of versions read them in its own
    query."""
    accepted = (ReviewRequest.objects.filter(version=OuterRef("pk"), state=ReviewRequest.State.ACCEPTED)
                .order_by().values("version").annotate(slugs=SpaceSeparated("community__slug")).values("slugs"))
    return Subquery(accepted, output_field=CharField())


def community_of_versions(version_ids: Collection[int]) -> dict[int, str]:
    """{version id: the slug of the community that accepted it}, for the search index (one per version; the
    first by slug should two ever have accepted the same version)."""
    return {pk: sorted(slugs)[0] for pk, slugs in community_slugs_accepting(version_ids).items()} if version_ids else {}


def community_names(slugs: Collection[str]) -> dict[str, str]:
    return dict(Community.objects.filter(slug__in=list(slugs)).values_list("slug", "name")) if slugs else {}


# --- communities, as readers see them (public pages, GET /api/communities) ----------------------------------

def _record_counts(communities: list[Community]) -> list[Community]:
    """Set `record_count` on each: the records whose latest public version the community accepted."""
    counts = dict(SearchDocument.objects.filter(is_latest=True, community__in=[c.slug for c in communities])
                  .values("community").annotate(n=Count("pk")).values_list("community", "n"))
    for community in communities:
        community.record_count = counts.get(community.slug, 0)
    return communities


def communities_public() -> list[Community]:
    """Every community, with its moderators and `record_count`."""
    return _record_counts(list(Community.objects.prefetch_related("moderators").order_by("name")))


def community_get_public(slug: str) -> Community:
    """One community, with its moderators and `record_count`; NotFound when there is none."""
    community = Community.objects.prefetch_related("moderators").filter(slug=slug).first()
    if community is None:
        raise NotFound(f"No community '{slug}'.")
    return _record_counts([community])[0]


def communities_listed() -> list[dict]:
    """The home page's list (repository.hooks.communities_listed)."""
    return [{"slug": c.slug, "name": c.name, "description": c.description, "url": c.get_absolute_url()}
            for c in Community.objects.order_by("name")]


def moderator_public_name(user) -> str:
    return user.get_full_name() or user.get_username()
