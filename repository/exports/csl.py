"""CSL-JSON (Citation Style Language 1.0.2): the item reference managers import and citeproc formats.

It is also the source of the formatted citations in `repository.exports.citation`, so a name or a date reads
the same in a copied APA citation as in the CSL-JSON a reader imports into Zotero.
"""

from django.conf import settings

from repository.exports import creator_name, publication_date, version_label, version_landing_url
from repository.models import ResourceType, Version

# CSL has no notebook type; a notebook is code with its outputs, and "software" is what Zenodo and DataCite's
# own CSL export use for code. APA prints the genre in brackets after the title, e.g. "[Jupyter notebook]".
CSL_TYPES = {ResourceType.NOTEBOOK: "software", ResourceType.DATASET: "dataset"}
GENRES = {ResourceType.NOTEBOOK: "Jupyter notebook", ResourceType.DATASET: "Data set"}


def version_csl_json(version: Version) -> dict:
    """One CSL-JSON item for `version`; keys without a value are left out, as citeproc expects."""
    issued = publication_date(version)
    item = {
        "id": version.doi or f"{version.record.public_id}/v{version.number}",
        "type": CSL_TYPES.get(version.resource_type, "dataset"),
        "genre": GENRES.get(version.resource_type, ""),
        "title": version.title,
        "author": [_author(creator) for creator in version.creators.all()],
        "issued": {"date-parts": [[issued.year, issued.month, issued.day]]},
        "publisher": settings.DOI_PUBLISHER,
        "version": version_label(version),
        "DOI": version.doi,
        # The landing page, not the DOI resolver: styles print the DOI themselves and use URL only without one.
        "URL": version_landing_url(version),
        "abstract": version.description,
        "keyword": ", ".join(version.keywords),
    }
    return {key: value for key, value in item.items() if value}


def _author(creator) -> dict:
    name = creator_name(creator)
    if name.family:
        # Particles stay in the family name ("van der Berg"): split off, styles would sort or initial them.
        return {"family": name.family, "given": name.given} if name.given else {"family": name.family}
    return {"literal": name.display}

