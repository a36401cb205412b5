"""Public pages of the communities: the list, and one community with its curation policy, its moderators and
its records, searchable with the same box and facets as /search."""

from django.db.models import Q
from django.http import Http404
from django.shortcuts import render

from moderation import selectors
from repository.errors import NotFound
from repository.web.search import render_search


def community_list(request):
    return render(request, "moderation/communities.html", {"communities": selectors.communities_public()})


def community_detail(request, slug):
    try:
        community = selectors.community_get_public(slug)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    moderators = sorted(selectors.moderator_public_name(u) for u in community.moderators.all())
    return render_search(request, "moderation/community_detail.html",
                         {"community": community, "moderators": moderators},
                         within=Q(community=community.slug), hidden_facets=("community",))
