"""Each version's `<metadata>` payloads, serialised ahead of the harvest (harvest.models.OaiFragment).

Building a payload from the ORM (model instances, their relations, the XML) costs most of a page; reading it as
stored text costs almost nothing. The stored text must never be stale, which two rules ensure:

- it is rewritten in the transaction of every change the core announces (publish, correct, withdraw), for every
  accepted version of the record, since a version's payload names its siblings (version links, the concept's
  latest version);
- it is served only while its `datestamp` equals the version's `public_changed_at`. The core moves that datestamp
  whenever what harvesters see changes (that is what OAI-PMH incremental harvesting relies on), including for
  the neighbours a publication links to, so a row written before any such change is rebuilt rather than served.

A row that is missing or out of date is built on the fly and stored (`fragments_for`), so a response never
depends on the rows being there; each such rebuild is logged, since after `manage.py oai_fragments_rebuild` it
should not happen.
"""

import logging
from collections.abc import Iterable

from django.db import DatabaseError, transaction

from harvest.models import OaiFragment
from harvest.provider.formats import FORMATS
from repository.models import Version

logger = logging.getLogger(__name__)


def fragments_build(version_pks: Iterable[int]) -> list[OaiFragment]:
    """Fresh fragments of the given accepted versions (withdrawn ones get empty payloads), from the exports."""
    # Imported here: items imports this module for its fallback.
    from harvest.provider.items import item_prefetch, items

    pks = set(version_pks)
    fragments = {}
    for metadata_format in FORMATS.values():
        versions = items().filter(pk__in=pks).filter(metadata_format.available)
        if metadata_format.columns is not None:
            versions = versions.only(*metadata_format.columns)
        versions = list(versions)
        item_prefetch(versions, metadata_format)
        for version in versions:
            fragment = fragments.setdefault(version.pk, OaiFragment(version_id=version.pk,
                                                                    datestamp=version.public_changed_at))
            if version.state != Version.State.WITHDRAWN:
                setattr(fragment, metadata_format.prefix, metadata_format.render(version))
    return list(fragments.values())


def fragments_write(version_pks: Iterable[int]) -> list[OaiFragment]:
    """Build and store (insert or replace) the fragments of the given versions; returns them."""
    fragments = fragments_build(version_pks)
    OaiFragment.objects.bulk_create(fragments, update_conflicts=True, unique_fields=["version"],
                                    update_fields=["datestamp", *FORMATS])
    return fragments


def fragments_for(version_pks: Iterable[int]) -> dict[int, OaiFragment]:
    """The fallback of a page: build the fragments that were missing or out of date, and store them if the
    database lets us (a read-only replica would not; the response is answered either way)."""
    pks = list(version_pks)
    logger.warning("OAI-PMH: %d version(s) had no up-to-date metadata fragments; built them on the fly "
                   "(manage.py oai_fragments_rebuild writes them all).", len(pks))
    fragments = fragments_build(pks)
    try:
        with transaction.atomic():
            OaiFragment.objects.bulk_create(fragments, update_conflicts=True, unique_fields=["version"],
                                            update_fields=["datestamp", *FORMATS])
    except DatabaseError:
        logger.exception("OAI-PMH: could not store fragments built on the fly")
    return {fragment.version_id: fragment for fragment in fragments}


def fragments_refresh_record(*, version: Version, **_details) -> None:
    """Listener of version_published, version_corrected and version_withdrawn: rewrite the fragments of every
    accepted version of the record, in the transaction of the change."""
    accepted = Version.objects.filter(record_id=version.record_id, public_changed_at__isnull=False,
                                      state__in=Version.ACCEPTED_STATES).values_list("pk", flat=True)
    fragments_write(accepted)


def fragments_rebuild_all(*, batch: int = 1000) -> int:
    """Rewrite the fragments of every OAI-PMH item, `batch` versions at a time; returns how many."""
    from harvest.provider.items import items

    written, last = 0, 0
    while True:
        pks = list(items().filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch])
        if not pks:
            return written
        with transaction.atomic():
            written += len(fragments_write(pks))
        last = pks[-1]
