"""RIS records (the tagged format EndNote, Zotero, Mendeley and Citavi import): TY DATA or COMP ... ER.

Each line is "TAG  - value" and ends with CR LF, as the RIS specification asks; a value is kept on one line
because a line break inside it would start a new, unknown tag.
"""

from django.conf import settings

from repository.exports import creator_name, doi_url, publication_date, version_label, version_landing_url
from repository.models import ResourceType, Version

# COMP is RIS's "computer program": the nearest it has to a notebook.
RIS_TYPES = {ResourceType.NOTEBOOK: "COMP", ResourceType.DATASET: "DATA"}


def version_ris(version: Version) -> str:
    """One RIS record for `version`."""
    issued = publication_date(version)
    tags = [("TY", RIS_TYPES.get(version.resource_type, "DATA"))]
    tags += [("AU", creator_name(creator).display) for creator in version.creators.all()]
    tags += [
        ("TI", version.title),
        ("PY", str(issued.year)),
        ("DA", issued.strftime("%Y/%m/%d")),
        ("PB", settings.DOI_PUBLISHER),
        ("ET", version_label(version)),  # Zotero and EndNote read a program's version from the edition tag
        ("DO", version.doi),
        ("UR", doi_url(version.doi) if version.doi else version_landing_url(version)),
        ("AB", version.description),
    ]
    tags += [("KW", keyword) for keyword in version.keywords]
    lines = [f"{tag}  - {_one_line(value)}" for tag, value in tags if value and value.strip()]
    lines.append("ER  - ")
    return "\r\n".join(lines) + "\r\n"


def _one_line(value: str) -> str:
    return " ".join(value.split())
