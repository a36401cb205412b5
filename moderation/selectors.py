"""Reads for moderation: queues, a request with what a decision needs, its timeline."""

from collections import defaultdict
from collections.abc import Collection
from datetime import timedelta

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from moderation.models import Community, ReviewEvent, ReviewRequest
from moderation.permissions import can_view_request, is_global_moderator
from repository.errors import InvalidInput, NotFound
from repository.models import ExecutionRun
from repository.querying import AnyOf


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
    return sorted(entries, key=lambda entry: entry["created"])


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
