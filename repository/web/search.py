"""The search page (/search) and the search part of other pages (the home page, a community's page): one
form, facets as links that add or remove a filter, pages. A query that cannot be read is answered 400 with the
reason on the page."""

from django.http import QueryDict
from django.shortcuts import redirect, render

from repository.errors import InvalidInput
from repository.models import ResourceType, Verdict
from repository.search import SORTS, SearchParams, search_params_from_query, search_run

FACET_TITLES = {"community": "Community", "resource_type": "Resource type", "verdict": "Verification",
                "license": "Licence", "year": "Publication year", "access": "Access",
                "keyword": "Keyword", "creator": "Creator"}
_LABELS = {"resource_type": dict(ResourceType.choices), "verdict": dict(Verdict.choices)}


def search_page(request):
    return render_search(request, "repository/search.html")


def records_index(request):
    """/records/ lists nothing of its own: it is the search page."""
    query = request.GET.urlencode()
    return redirect("/search" + (f"?{query}" if query else ""), permanent=False)


def render_search(request, template: str, context: dict | None = None, *, within=None,
                  hidden_facets: tuple[str, ...] = ()):
    """Render `template` with `search` (the form's state, the hits, facets and pages) added to `context`."""
    context = dict(context or {})
    try:
        params = search_params_from_query(request.GET)
        result = search_run(params, within=within)
    except InvalidInput as exc:
        context["search"] = {"error": exc.detail, "field_errors": exc.field_errors, "q": request.GET.get("q", ""),
                             "sorts": SORTS}
        return render(request, template, context, status=400)
    context["search"] = {
        "q": params.q, "sort": result.sort, "sorts": SORTS, "all_versions": params.all_versions,
        "result": result, "hits": [_hit(h) for h in result.hits],
        "facets": _facets(request.GET, result.aggregations, hidden_facets),
        "selected": [(FACET_TITLES[name], value, _toggle_url(request.GET, name, value))
                     for name, values in params.filters.items() for value in values if name not in hidden_facets],
        "page": params.page, "pages": -(-min(result.total, 10_000) // params.size),
        "next_url": _page_url(request.GET, params.page + 1) if result.has_next else "",
        "prev_url": _page_url(request.GET, params.page - 1) if params.page > 1 else "",
        "hidden": {name: request.GET.getlist(name) for name in hidden_facets},
    }
    return render(request, template, context)


def newest_records(count: int = 5) -> list[dict]:
    return [_hit(h) for h in search_run(SearchParams(size=count, sort="newest")).hits]


def _hit(document) -> dict:
    return {"document": document, "record_id": document.record.public_id,
            "verdict_label": _LABELS["verdict"].get(document.verdict, ""),
            "resource_type_label": _LABELS["resource_type"].get(document.resource_type, document.resource_type)}


def _facets(query: QueryDict, aggregations: dict, hidden: tuple[str, ...]) -> list[dict]:
    facets = []
    for name, buckets in aggregations.items():
        if name in hidden or not buckets:
            continue
        facets.append({"name": name, "title": FACET_TITLES[name], "buckets": [
            {"key": b["key"], "label": b["label"],
             "count": b["doc_count"], "selected": b["is_selected"], "url": _toggle_url(query, name, b["key"])}
            for b in buckets]})
    return facets


def _toggle_url(query: QueryDict, name: str, key: str) -> str:
    query = query.copy()
    values = query.getlist(name)
    kept = [v for v in values if v.lower() != key.lower()]
    query.setlist(name, kept if len(kept) < len(values) else [*values, key])
    query.pop("page", None)
    return f"?{query.urlencode()}"


def _page_url(query: QueryDict, page: int) -> str:
    query = query.copy()
    query["page"] = str(page)
    return f"?{query.urlencode()}"
