"""What a page shows about a version's data references: besides what the author typed, the title and creators
of the dataset a DOI points to, from our own versions or from records harvested over OAI-PMH."""

from dataclasses import dataclass, field

from repository import hooks
from repository.models import DataReference, Version
from repository.validators import normalize_doi


@dataclass
class DescribedReference:
    reference: DataReference
    title: str = ""
    creators: list[str] = field(default_factory=list)
    year: int | None = None
    source: str = ""  # where the description comes from: "this repository" or the harvested repository's name
    withdrawn: bool = False  # the dataset was withdrawn or deleted at its source


def data_references_described(version: Version) -> list[DescribedReference]:
    """The version's data references in order, each with what we know of its dataset (two queries at most)."""
    references = list(version.data_references.all())
    dois = {r.identifier: normalize_doi(r.identifier).lower() for r in references if r.kind == DataReference.Kind.DOI}
    ours = {v.doi: v for v in Version.objects.filter(doi__in=set(dois.values()), state__in=Version.ACCEPTED_STATES)
            .prefetch_related("creators")} if dois else {}
    harvested = hooks.external_metadata_for_dois(doi for doi in dois if dois[doi] not in ours)
    described = []
    for reference in references:
        own = ours.get(dois.get(reference.identifier, ""))
        external = harvested.get(reference.identifier)
        if own is not None:
            described.append(DescribedReference(
                reference, title=own.title, creators=[c.name for c in own.creators.all()],
                year=own.published_at.year if own.published_at else None, source="this repository",
                withdrawn=own.state == Version.State.WITHDRAWN))
        elif external is not None:
            described.append(DescribedReference(
                reference, title=external.title, creators=list(external.creators), year=external.publication_year,
                source=external.source.repository_name or external.source.base_url, withdrawn=external.deleted))
        else:
            described.append(DescribedReference(reference))
    return described
