"""`GET /api/records`: search the public versions, in the shape InvenioRDM's API answers
(`hits.hits`, `hits.total`, `aggregations.<facet>.buckets`, `links.next`). Anyone may search."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from repository.api.serializers import ProblemOutput
from repository.models import FileAccess, ResourceType, Verdict
from repository.search import SORTS, SearchResult, search_params_from_query, search_run
from repository.search.engine import MAX_PAGE_SIZE
from repository.services.dois import doi_url


class CreatorHitOutput(serializers.Serializer):
    name = serializers.CharField()
    orcid = serializers.CharField()
    affiliation = serializers.CharField()


class AccessHitOutput(serializers.Serializer):
    files = serializers.ChoiceField(choices=FileAccess.choices, help_text=(
        "Who may download the files: everyone (open), no one until embargo_until (embargoed), or the people the "
        "owners grant access (restricted). The metadata are public in every case."))
    embargo_until = serializers.DateField(allow_null=True, help_text="The day an embargo ends; null otherwise.")


class HitOutput(serializers.Serializer):
    id = serializers.CharField(source="record.public_id", help_text="The record's id.")
    version = serializers.IntegerField(source="number")
    is_latest = serializers.BooleanField(help_text="The newest public version of its record.")
    doi = serializers.CharField()
    doi_url = serializers.SerializerMethodField()
    concept_doi = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    creators = CreatorHitOutput(many=True)
    keywords = serializers.ListField(child=serializers.CharField())
    license = serializers.CharField(help_text="SPDX id.")
    resource_type = serializers.ChoiceField(choices=ResourceType.choices)
    community = serializers.CharField(help_text="Slug of the community that accepted it; empty when none.")
    verdict = serializers.CharField(help_text=f"Latest verification verdict, one of {', '.join(Verdict.values)}; "
                                    "empty when never verified.")
    published_at = serializers.DateTimeField()
    access = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_doi_url(self, document) -> str:
        return doi_url(document.doi) if document.doi else ""

    @extend_schema_field(AccessHitOutput)
    def get_access(self, document) -> dict:
        return {"files": document.access,
                "embargo_until": document.embargo_until.isoformat() if document.embargo_until else None}

    def get_links(self, document) -> dict[str, str]:
        request = self.context["request"]
        record_id = document.record.public_id
        return {
            "self": request.build_absolute_uri(reverse("api:record_version", kwargs={
                "record_id": record_id, "number": document.number})),
            "self_html": request.build_absolute_uri(reverse("repository:version_landing", kwargs={
                "record_id": record_id, "number": document.number})),
        }


class HitsOutput(serializers.Serializer):
    hits = HitOutput(many=True)
    total = serializers.IntegerField()


class BucketOutput(serializers.Serializer):
    key = serializers.CharField(help_text="The value to filter by.")
    label = serializers.CharField()
    doc_count = serializers.IntegerField()
    is_selected = serializers.BooleanField()


class FacetOutput(serializers.Serializer):
    buckets = BucketOutput(many=True)


class AggregationsOutput(serializers.Serializer):
    community = FacetOutput()
    resource_type = FacetOutput()
    verdict = FacetOutput()
    license = FacetOutput()
    year = FacetOutput()
    access = FacetOutput()
    keyword = FacetOutput()
    creator = FacetOutput()


class SearchOutput(serializers.Serializer):
    hits = HitsOutput()
    aggregations = AggregationsOutput()
    sortBy = serializers.CharField()  # noqa: N815 - InvenioRDM's name
    links = serializers.DictField(child=serializers.CharField(), help_text="self, and next/prev when they exist.")


def _facet_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, many=True, description=description + " Repeat for several (any of them).")


SEARCH_PARAMETERS = [
    OpenApiParameter("q", str, description=(
        'Words (all must match), "exact phrase", a OR b, -excluded, and field:value for title, creator, orcid, '
        "keyword, doi. A DOI or an ORCID iD alone finds its record.")),
    OpenApiParameter("sort", str, enum=list(SORTS), description=(
        "bestmatch (default with q), newest (default without), mostviewed (the record's unique views, counted "
        "COUNTER-style and updated about once a minute; ties newest first).")),
    OpenApiParameter("page", int, description="From 1; page x size may not pass 10,000."),
    OpenApiParameter("size", int, description=f"Hits per page, 1 to {MAX_PAGE_SIZE} (default 10)."),
    OpenApiParameter("all_versions", bool, description="Every public version, not only each record's latest."),
    _facet_parameter("community", "Community slug."),
    _facet_parameter("resource_type", f"One of {', '.join(ResourceType.values)}."),
    _facet_parameter("verdict", "Verification verdict."),
    _facet_parameter("license", "SPDX licence id."),
    _facet_parameter("year", "Publication year."),
    _facet_parameter("access", f"File access, one of {', '.join(FileAccess.values)}."),
    _facet_parameter("keyword", "Keyword (case-insensitive)."),
    _facet_parameter("creator", "Creator's name as in the facet, or ORCID iD."),
]


def search_schema(view_function):
    # Anyone may search: no 401, and the schema's security lists "no authentication" ({}).
    responses = {200: SearchOutput, (400, "application/problem+json"): ProblemOutput}
    return extend_schema(parameters=SEARCH_PARAMETERS, responses=responses,
                         summary="Search the published records", operation_id="records_search")(view_function)


def search_response(request) -> Response:
    result = search_run(search_params_from_query(request.query_params))
    return Response(search_output(request, result))


def search_output(request, result: SearchResult) -> dict:
    return {
        "hits": {"hits": HitOutput(result.hits, many=True, context={"request": request}).data,
                 "total": result.total},
        "aggregations": {name: {"buckets": buckets} for name, buckets in result.aggregations.items()},
        "sortBy": result.sort,
        "links": _links(request, result),
    }


def _links(request, result: SearchResult) -> dict[str, str]:
    def page_url(page: int) -> str:
        query = request.GET.copy()
        query["page"] = str(page)
        query["size"] = str(result.params.size)
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    links = {"self": page_url(result.params.page)}
    if result.has_next:
        links["next"] = page_url(result.params.page + 1)
    if result.params.page > 1:
        links["prev"] = page_url(result.params.page - 1)
    return links
