"""Sets: a two-level hierarchy over communities and resource types.

    community                          every item accepted through a community's review
    community:<slug>                   the items accepted by that community (Community.slug)
    resource_type                      every item
    resource_type:ComputationalNotebook, resource_type:Dataset

A version belongs to the community of its accepted ReviewRequest. Headers name the leaf sets an item is in; as
the spec says of hierarchies, asking for a parent set returns the items of all its children. A well-formed set
that does not exist matches no record (noRecordsMatch), as it would if it existed and were empty.
"""

from django.db.models import Q

from moderation.selectors import communities_list, versions_accepted_by
from repository.models import ResourceType

COMMUNITY = "community"
RESOURCE_TYPE = "resource_type"


def sets_list() -> list[tuple[str, str]]:
    """(setSpec, setName) of every set, parents before their children."""
    communities = communities_list()
    return [
        (COMMUNITY, "Communities"),
        *((f"{COMMUNITY}:{slug}", name) for slug, name in communities),
        (RESOURCE_TYPE, "Resource types"),
        *((f"{RESOURCE_TYPE}:{value}", label) for value, label in ResourceType.choices),
    ]


def set_filter(set_spec: str) -> Q | None:
    """The items of a set as a filter on Version, or None when there is no such set."""
    parent, _, child = set_spec.partition(":")
    if parent == COMMUNITY and ":" not in child:
        return versions_accepted_by(child or None)
    if parent == RESOURCE_TYPE and not child:
        return Q()
    if parent == RESOURCE_TYPE and child in ResourceType.values:
        return Q(resource_type=child)
    return None


def version_set_specs(version) -> list[str]:
    """The leaf sets of one item (a Version or an items.Item); `oai_communities` (the slugs) is attached by
    items.items_read or items.item_prefetch."""
    return [*(f"{COMMUNITY}:{slug}" for slug in version.oai_communities), f"{RESOURCE_TYPE}:{version.resource_type}"]
