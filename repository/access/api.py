"""Access requests, grants and share links in the API (the web pages are views.py; both call services.py).

- `POST /api/records/{id}/access/requests` {"message"}: a signed-in reader asks for access (201).
- `GET /api/records/{id}/access/requests`: the owners list them, pending first;
  `POST .../requests/{n}/actions/accept` {"until": "YYYY-MM-DD"} (optional) answers 200 with the request and its
  grant; `POST .../requests/{n}/actions/decline` {"reason"} (optional) answers 200 with the request.
- `GET /api/records/{id}/access/grants` (live grants), `DELETE .../grants/{grant_id}` revokes (204).
- `POST /api/records/{id}/access/links` {"expires": "YYYY-MM-DD", "label"} (both optional) answers 201 with
  `url`, the only time the secret link is shown; `GET` lists the links without it; `DELETE .../links/{link_id}`
  revokes (204).

Owners' routes answer 404 to everyone else, signed in or not, as the GitLab link and drafts do (nothing says the
record has requests); without credentials, 401.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from repository.access import selectors
from repository.access.http import share_link_url
from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.access.services import (
    MAX_LABEL_LENGTH,
    MAX_MESSAGE_LENGTH,
    access_grant_revoke,
    access_request_accept,
    access_request_create,
    access_request_decline,
    share_link_create,
    share_link_revoke,
)
from repository.api.serializers import ProblemOutput, StrictInput, with_problem_responses

# Inputs

class AccessRequestInput(StrictInput):
    message = serializers.CharField(max_length=MAX_MESSAGE_LENGTH, help_text="To the owners: who you are and why "
                                    "you need the files.")


class AccessAcceptInput(StrictInput):
    until = serializers.DateField(required=False, allow_null=True, help_text="The last day of access (inclusive, "
                                  "UTC); left out: no end.")


class AccessDeclineInput(StrictInput):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_MESSAGE_LENGTH,
                                   help_text="Sent to the requester.")


class ShareLinkInput(StrictInput):
    expires = serializers.DateField(required=False, allow_null=True, help_text="The last day the link works "
                                    "(inclusive, UTC); left out: until revoked.")
    label = serializers.CharField(required=False, allow_blank=True, max_length=MAX_LABEL_LENGTH,
                                  help_text="Whom it is for, e.g. 'Referee 2'.")


# Outputs

class PersonOutput(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.CharField(source="get_full_name")


class AccessRequestOutput(serializers.Serializer):
    number = serializers.IntegerField()
    state = serializers.ChoiceField(choices=AccessRequest.State.choices)
    requester = PersonOutput()
    message = serializers.CharField()
    created = serializers.DateTimeField()
    until = serializers.DateField(allow_null=True, help_text="Accepted until this day (inclusive).")
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(allow_null=True)


class AccessGrantOutput(serializers.Serializer):
    id = serializers.IntegerField()
    user = PersonOutput()
    until = serializers.DateField(allow_null=True, help_text="The last day of access (inclusive); null: no end.")
    created = serializers.DateTimeField()
    granted_by = serializers.CharField(source="granted_by.username", allow_null=True, default=None)
    request = serializers.IntegerField(source="request.number", allow_null=True, default=None,
                                       help_text="The number of the request it answered, if any.")


class AccessAcceptedOutput(AccessRequestOutput):
    grant = AccessGrantOutput()


class ShareLinkOutput(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    state = serializers.ChoiceField(choices=["live", "expired", "revoked"])
    created = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    uses = serializers.IntegerField()
    last_used_at = serializers.DateTimeField(allow_null=True)



class ShareLinkCreatedOutput(ShareLinkOutput):
    url = serializers.URLField(help_text="The secret link; shown in this answer only.")


# The problems these routes answer, with examples.

def _problem(status_code: int, code: str, title: str, detail: str, errors=None) -> OpenApiExample:
    value = {"type": f"urn:nbarchive:problem:{code}", "title": title, "status": status_code, "detail": detail,
             "code": code}
    if errors:
        value["errors"] = errors
    return OpenApiExample(f"{status_code} {code}", value=value, status_codes=[str(status_code)],
                          response_only=True)


NOT_SIGNED_IN = _problem(401, "not_authenticated", "Authentication credentials were not provided.",
                         "Authentication credentials were not provided.")
NOT_OWNED = _problem(404, "not_found", "Not found", "No record 'abcde-12345' that you own.")
INVALID_DAY = _problem(400, "invalid", "The input is not valid", "Some fields are not valid; nothing was saved.",
                       [{"field": "until", "messages": ["Date has wrong format. Use one of these formats instead: "
                                                        "YYYY-MM-DD."]}])
ANSWERED = _problem(409, "conflict", "The request conflicts with the current state",
                    "Request 3 was accepted already on 2027-03-01.")


def _responses(success: dict, *examples: OpenApiExample) -> dict:
    """`with_problem_responses` (401 and 503 always), each problem of `examples` described with them."""
    by_status: dict[int, list[OpenApiExample]] = {}
    for example in examples:
        by_status.setdefault(int(example.status_codes[0]), []).append(example)
    return {**with_problem_responses(success, *by_status),
            **{(code, "application/problem+json"): OpenApiResponse(ProblemOutput, examples=listed)
               for code, listed in by_status.items()}}


# Views

class RecordAccessRequestsApi(APIView):
    @extend_schema(responses=_responses({200: AccessRequestOutput(many=True)}, NOT_SIGNED_IN, NOT_OWNED),
                   operation_id="record_access_requests_list",
                   summary="The record's access requests, pending first (owners)")
    def get(self, request, record_id):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        return Response(AccessRequestOutput(selectors.access_requests_list(record=record), many=True).data)

    @extend_schema(request=AccessRequestInput,
                   responses=_responses({201: AccessRequestOutput},
                       _problem(400, "invalid", "The input is not valid", "Some fields are not valid; nothing was "
                                "saved.", [{"field": "message", "messages": ["This field may not be blank."]}]),
                       NOT_SIGNED_IN,
                       _problem(404, "not_found", "Not found", "No published version of record 'abcde-12345'."),
                       _problem(409, "conflict", "The request conflicts with the current state",
                                "Your request 2 of 2027-03-01 is still waiting for the owners' answer.")),
                   operation_id="record_access_request_create",
                   summary="Ask the owners for access to the record's restricted files (a signed-in reader)",
                   examples=[OpenApiExample("A request", request_only=True, value={
                       "message": "I referee the paper these data support (J. Chem. Phys., manuscript 2027-0042)."})])
    def post(self, request, record_id):
        record = selectors.record_get_public(record_id=record_id)
        serializer = AccessRequestInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        access_request = access_request_create(record=record, requester=request.user,
                                               message=serializer.validated_data["message"])
        return Response(AccessRequestOutput(access_request).data, status=status.HTTP_201_CREATED)


class AccessRequestAcceptApi(APIView):
    @extend_schema(request=AccessAcceptInput,
                   responses=_responses({200: AccessAcceptedOutput}, INVALID_DAY, NOT_SIGNED_IN, NOT_OWNED, ANSWERED),
                   operation_id="record_access_request_accept",
                   summary="Accept an access request, optionally until a day (owners)",
                   examples=[OpenApiExample("Until the end of the review", request_only=True,
                                            value={"until": "2027-06-30"})])
    def post(self, request, record_id, number):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        access_request = selectors.access_request_get(record=record, number=number)
        serializer = AccessAcceptInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        grant = access_request_accept(request=access_request, actor=request.user,
                                      until=serializer.validated_data.get("until"))
        access_request.refresh_from_db()
        grant = AccessGrant.objects.select_related("user", "granted_by", "request").get(pk=grant.pk)
        return Response({**AccessRequestOutput(access_request).data, "grant": AccessGrantOutput(grant).data})


class AccessRequestDeclineApi(APIView):
    @extend_schema(request=AccessDeclineInput,
                   responses=_responses({200: AccessRequestOutput}, NOT_SIGNED_IN, NOT_OWNED, ANSWERED),
                   operation_id="record_access_request_decline", summary="Decline an access request (owners)",
                   examples=[OpenApiExample("With a reason", request_only=True,
                                            value={"reason": "The data are licensed to members of the consortium."})])
    def post(self, request, record_id, number):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        access_request = selectors.access_request_get(record=record, number=number)
        serializer = AccessDeclineInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        access_request = access_request_decline(request=access_request, actor=request.user,
                                                reason=serializer.validated_data.get("reason", ""))
        return Response(AccessRequestOutput(access_request).data)


class RecordAccessGrantsApi(APIView):
    @extend_schema(responses=_responses({200: AccessGrantOutput(many=True)}, NOT_SIGNED_IN, NOT_OWNED),
                   operation_id="record_access_grants_list",
                   summary="Who was let in to the record's restricted files, and until when (owners)")
    def get(self, request, record_id):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        return Response(AccessGrantOutput(selectors.access_grants_live(record=record), many=True).data)


class AccessGrantApi(APIView):
    @extend_schema(responses=_responses({204: None}, NOT_SIGNED_IN, NOT_OWNED),
                   operation_id="record_access_grant_revoke", summary="Revoke a grant (owners)")
    def delete(self, request, record_id, grant_id):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        grant = selectors.access_grant_get(record=record, grant_id=grant_id)
        if grant.revoked_at is None:  # DELETE is idempotent: a revoked grant is simply gone from the list
            access_grant_revoke(grant=grant, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecordShareLinksApi(APIView):
    @extend_schema(responses=_responses({200: ShareLinkOutput(many=True)}, NOT_SIGNED_IN, NOT_OWNED),
                   operation_id="record_share_links_list",
                   summary="The record's share links, without their secret (owners)")
    def get(self, request, record_id):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        return Response(ShareLinkOutput(selectors.share_links_list(record=record), many=True).data)

    @extend_schema(request=ShareLinkInput,
                   responses=_responses({201: ShareLinkCreatedOutput},
                       _problem(400, "invalid", "The input is not valid", "2027-01-01 has passed.",
                                [{"field": "expires", "messages": ["The day has passed; give today or a later day, "
                                                                   "or none."]}]),
                       NOT_SIGNED_IN, NOT_OWNED,
                       _problem(409, "conflict", "The request conflicts with the current state",
                                "This record has no restricted version and no draft: a share link would open "
                                "nothing that is not public already.")),
                   operation_id="record_share_link_create",
                   summary="Make a secret link to the record's restricted versions and draft (owners)",
                   description="The answer's `url` is the only time the link is shown: keep it.",
                   examples=[OpenApiExample("For a referee", request_only=True,
                                            value={"expires": "2027-06-30", "label": "Referee 2"})])
    def post(self, request, record_id):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        serializer = ShareLinkInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        link, token = share_link_create(record=record, actor=request.user,
                                        expires=serializer.validated_data.get("expires"),
                                        label=serializer.validated_data.get("label", ""))
        link = ShareLink.objects.select_related("created_by").get(pk=link.pk)
        return Response({**ShareLinkOutput(link).data, "url": share_link_url(token)}, status=status.HTTP_201_CREATED)


class ShareLinkApi(APIView):
    @extend_schema(responses=_responses({204: None}, NOT_SIGNED_IN, NOT_OWNED),
                   operation_id="record_share_link_revoke", summary="Revoke a share link (owners)")
    def delete(self, request, record_id, link_id):
        record = selectors.record_get_managed(record_id=record_id, user=request.user)
        link = selectors.share_link_get(record=record, link_id=link_id)
        if link.revoked_at is None:  # idempotent, as for grants
            share_link_revoke(link=link, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
