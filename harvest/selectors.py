"""Reads of harvested metadata, for pages that show what a data reference's DOI points to.

Both functions accept DOIs in any of the forms people write (10.x/..., doi:10.x/..., https://doi.org/10.x/...) and
match them case-insensitively. When several harvested items carry the DOI (two sources, or a source listing a
dataset twice), the one the source still offers wins over a deleted one, then the most recently changed. A deleted
item is returned only when nothing else carries the DOI; callers can tell by `record.deleted`.
"""

from collections.abc import Iterable

from harvest.models import HarvestedRecord
from repository.validators import normalize_doi


def external_metadata_for_doi(doi: str) -> HarvestedRecord | None:
    return external_metadata_for_dois([doi]).get(doi)


def external_metadata_for_dois(dois: Iterable[str]) -> dict[str, HarvestedRecord]:
    """{doi as given: its harvested record} for the DOIs that have one, in one query."""
    wanted: dict[str, list[str]] = {}  # lower-case bare DOI -> the spellings asked for
    for doi in dois:
        if doi and (key := normalize_doi(doi).lower()):
            wanted.setdefault(key, []).append(doi)
    if not wanted:
        return {}
    best: dict[str, HarvestedRecord] = {}
    candidates = (HarvestedRecord.objects.filter(doi__in=list(wanted)).select_related("source").defer("raw_metadata")
                  .order_by("doi", "deleted", "-datestamp", "-pk"))
    for record in candidates:
        best.setdefault(record.doi, record)
    return {asked: record for key, record in best.items() for asked in wanted[key]}
