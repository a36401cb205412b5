"""REST API of review requests: the queue, one request, its timeline and the actions on it."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from moderation import selectors, services, workflow
from repository.api.serializers import ProblemOutput, StrictInput, with_problem_responses

ACTION_NAMES = {"accept": "accept", "decline": "decline", "request-changes": "request_changes", "cancel": "cancel",
                "resubmit": "resubmit"}


_with_errors = with_problem_responses


class CommentInput(StrictInput):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=20_000, trim_whitespace=True)


class RequestOutput(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    state = serializers.CharField()
    community = serializers.SerializerMethodField()
    record = serializers.CharField(source="version.record.public_id")
    version = serializers.IntegerField(source="version.number")
    title = serializers.CharField(source="version.title")
    submitted_by = serializers.CharField(source="submitted_by.username")
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    latest_run = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_community(self, review) -> dict:
        return {"slug": review.community.slug, "name": review.community.name}

    def get_latest_run(self, review) -> dict | None:
        run = review.version.latest_run
        return {"id": str(run.run_id), "status": run.status, "verdict": run.verdict} if run else None

    def get_allowed_actions(self, review) -> list[str]:
        names = {value: key for key, value in ACTION_NAMES.items()}
        return [names[action] for action in workflow.allowed_actions(self.context["request"].user, review)]

    def get_links(self, review) -> dict:
        request = self.context["request"]
        return {
            "self": request.build_absolute_uri(reverse("moderation_api:request", kwargs={"request_id": review.pk})),
            "timeline": request.build_absolute_uri(reverse("moderation_api:timeline",
                                                           kwargs={"request_id": review.pk})),
            "html": request.build_absolute_uri(review.get_absolute_url()),
        }


class TimelineEntryOutput(serializers.Serializer):
    kind = serializers.CharField()
    created = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True)
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    comment = serializers.CharField()
    run_id = serializers.CharField(required=False)
    verdict = serializers.CharField(required=False)


class RequestListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("state", str), OpenApiParameter("community", str),
                    OpenApiParameter("verdict", str),
                    OpenApiParameter("older_than", int, description="Only requests waiting at least this many days "
                                     f"(0 to {selectors.MAX_OLDER_THAN_DAYS})."),
                    OpenApiParameter("order", str, enum=["created", "-created", "updated", "-updated"])],
        responses=_with_errors({200: RequestOutput(many=True)}, 400), operation_id="requests_list",
        summary="Review requests: moderators see their communities' open requests, authors their own")
    def get(self, request):
        params = request.query_params
        queue = selectors.request_queue(user=request.user, state=params.get("state") or None,
                                        community=params.get("community") or None,
                                        verdict=params.get("verdict") or None,
                                        older_than_days=selectors.older_than_days_parse(params.get("older_than")),
                                        order=params.get("order") or "-created")
        return Response(RequestOutput(queue[:500], many=True, context={"request": request}).data)


class RequestApi(APIView):
    @extend_schema(responses=_with_errors({200: RequestOutput}, 404), operation_id="request_get",
                   summary="One review request")
    def get(self, request, request_id):
        review = selectors.request_get_for_user(request_id=request_id, user=request.user)
        return Response(RequestOutput(review, context={"request": request}).data)


class TimelineApi(APIView):
    @extend_schema(responses=_with_errors({200: TimelineEntryOutput(many=True)}, 404), operation_id="timeline_get",
                   summary="The request's timeline: state changes, comments and verification results")
    def get(self, request, request_id):
        review = selectors.request_get_for_user(request_id=request_id, user=request.user)
        return Response(TimelineEntryOutput(selectors.request_timeline(review), many=True).data)

    @extend_schema(request=CommentInput, responses=_with_errors({201: TimelineEntryOutput}, 400, 403, 404),
                   operation_id="timeline_comment", summary="Comment on a request")
    def post(self, request, request_id):
        review = selectors.request_get_for_user(request_id=request_id, user=request.user)
        serializer = CommentInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = services.review_comment(request_id=review.pk, actor=request.user,
                                        comment=serializer.validated_data.get("comment", ""))
        entry = {"kind": event.kind, "created": event.created, "actor": request.user.get_username(),
                 "from_state": "", "to_state": "", "comment": event.comment}
        return Response(TimelineEntryOutput(entry).data, status=status.HTTP_201_CREATED)


class ActionApi(APIView):
    @extend_schema(request=CommentInput, responses=_with_errors({200: RequestOutput}, 400, 403, 404, 409),
                   operation_id="request_action",
                   summary="Accept, decline (reason required), request changes (comment required), cancel or resubmit")
    def post(self, request, request_id, action):
        review = selectors.request_get_for_user(request_id=request_id, user=request.user)
        serializer = CommentInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        review = services.review_act(request_id=review.pk, action=ACTION_NAMES[action], actor=request.user,
                                     comment=serializer.validated_data.get("comment", ""))
        review = selectors.request_get_for_user(request_id=review.pk, user=request.user)
        return Response(RequestOutput(review, context={"request": request}).data)


class CommunityOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    curation_policy = serializers.CharField()
    moderators = serializers.SerializerMethodField()
    record_count = serializers.IntegerField(help_text="Records whose latest public version it accepted.")
    links = serializers.SerializerMethodField()

    def get_moderators(self, community) -> list[str]:
        return sorted(selectors.moderator_public_name(u) for u in community.moderators.all())

    def get_links(self, community) -> dict[str, str]:
        request = self.context["request"]
        return {"self_html": request.build_absolute_uri(community.get_absolute_url()),
                "records": request.build_absolute_uri(reverse("api:records") + f"?community={community.slug}")}


class CommunityListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: inline_serializer("CommunityList", fields={
                       "hits": inline_serializer("CommunityHits", fields={
                           "hits": CommunityOutput(many=True), "total": serializers.IntegerField()})})},
                   summary="List the communities", operation_id="communities_list")
    def get(self, request):
        communities = selectors.communities_public()
        return Response({"hits": {"hits": CommunityOutput(communities, many=True, context={"request": request}).data,
                                  "total": len(communities)}})


class CommunityApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: CommunityOutput, (404, "application/problem+json"): ProblemOutput},
                   summary="Show a community",
                   operation_id="community_get")
    def get(self, request, slug):
        community = selectors.community_get_public(slug)
        return Response(CommunityOutput(community, context={"request": request}).data)
