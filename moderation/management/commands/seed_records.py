"""python manage.py seed_records N [--batch 5000]: N accepted versions, fast, for benchmarks (OAI-PMH paging).

Rows are written with bulk inserts, not through the services: no files, no verification runs, no DOI outbox
and no audit events, so a million versions take minutes rather than days. What harvesters see is complete:
records with a concept DOI, versions with a version DOI, title, description, keywords, licence, one to three
creators (some with an ORCID iD and an affiliation), a datestamp (`public_changed_at`) spread over the past,
with some ties to the second and below. Every tenth version is a second version of the record before it, every
fiftieth is withdrawn (a tombstone for OAI-PMH), every third was accepted through the community `seeded`.

The owner of everything is the fixed user `seed-demo` (no password). DOIs are `<DOI_PREFIX>/seed.<record id>`
(and `.v<n>`); nothing is registered anywhere. Running it again adds N more. Works on SQLite and PostgreSQL.
"""

import datetime
import random
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from moderation.models import Community, ReviewRequest
from repository.models import Creator, Record, ResourceType, Version
from repository.models.records import new_public_id

SEED_USERNAME = "seed-demo"
SEED_COMMUNITY = "seeded"
SPACING_SECONDS = 30  # the mean gap between two datestamps

IMAGE = "registry.example.org/nbarchive/seed@sha256:" + "5eed" * 16
LICENSES = ("CC-BY-4.0", "CC0-1.0", "MIT", "Apache-2.0")
TOPICS = ("band gaps of perovskites", "thermal expansion of copper", "protein folding kinetics",
          "ocean surface temperatures", "galaxy rotation curves", "soil moisture retrieval",
          "graphene phonon dispersion", "neural network calibration")
KEYWORDS = ("DFT", "materials", "climate", "astronomy", "biophysics", "machine learning", "remote sensing")
FAMILY = ("Doe", "Müller", "Okafor", "Tanaka", "García", "Nowak", "Svensson", "Rossi", "Nguyen", "Kowalczyk")
GIVEN = ("Jane", "Amina", "Kenji", "Lucía", "Piotr", "Ingrid", "Marco", "Linh", "Tomasz", "Sam")
ORCID = "0000-0002-1825-0097"  # ORCID's own example iD, valid checksum
AFFILIATIONS = ("University of Example", "Example Institute of Technology", "")


class Command(BaseCommand):
    help = "Create N accepted versions (with records, creators, some withdrawn, some in a community) in bulk."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="How many versions to create.")
        parser.add_argument("--batch", type=int, default=5000, help="Versions per transaction (default 5000).")
        parser.add_argument("--random-seed", type=int, default=None, help="Make the metadata reproducible.")

    def handle(self, *args, count, batch, random_seed, **options):
        if count < 1 or batch < 1:
            raise CommandError("N and --batch must be positive.")
        rng = random.Random(random_seed)
        owner = _seed_user()
        community, _ = Community.objects.get_or_create(slug=SEED_COMMUNITY, defaults={"name": "Seeded records"})
        # Datestamps run from count x SPACING_SECONDS ago to now, in creation order.
        start = timezone.now() - datetime.timedelta(seconds=count * SPACING_SECONDS)
        started = time.monotonic()
        done = 0
        while done < count:
            size = min(batch, count - done)
            with transaction.atomic():
                _seed_batch(rng, owner, community, first=done, size=size, start=start)
            done += size
            rate = done / max(time.monotonic() - started, 1e-9)
            self.stdout.write(f"seeded {done}/{count} versions ({rate:,.0f}/s)")
        self.stdout.write(self.style.SUCCESS(f"Created {count} versions in {time.monotonic() - started:.1f} s."))


def _seed_user():
    user, created = get_user_model().objects.get_or_create(
        username=SEED_USERNAME, defaults={"email": f"{SEED_USERNAME}@example.org"})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _unique_public_ids(n: int) -> list[str]:
    ids = set()
    while len(ids) < n:
        ids.update(new_public_id() for _ in range(n - len(ids)))
        ids -= _existing_public_ids(ids)
    return list(ids)


def _existing_public_ids(ids: set[str]) -> set[str]:
    ids, existing = list(ids), set()
    for i in range(0, len(ids), 900):  # below SQLite's limit on query parameters
        existing.update(Record.objects.filter(public_id__in=ids[i:i + 900]).values_list("public_id", flat=True))
    return existing


def _seed_batch(rng: random.Random, owner, community, *, first: int, size: int, start: datetime.datetime) -> None:
    # Which versions open a new record, and which are the second version of the record before them.
    indices = range(first, first + size)
    second = {i for i in indices if i % 10 == 9 and i > first}
    public_ids = iter(_unique_public_ids(size - len(second)))
    prefix = settings.DOI_PREFIX

    records, record_of = [], {}
    for i in indices:
        if i in second:
            record_of[i] = record_of[i - 1]
            continue
        public_id = next(public_ids)
        record = Record(public_id=public_id, concept_doi=f"{prefix}/seed.{public_id}")
        records.append(record)
        record_of[i] = record
    Record.objects.bulk_create(records, batch_size=1000)
    Record.owners.through.objects.bulk_create(
        [Record.owners.through(record_id=r.pk, user_id=owner.pk) for r in records], batch_size=1000)

    versions, moment = [], start + datetime.timedelta(seconds=first * SPACING_SECONDS)
    for i in indices:
        if i % 13:  # every 13th shares the datestamp of the one before, to exercise ties
            moment += datetime.timedelta(seconds=rng.uniform(0, 2 * SPACING_SECONDS))
        record = record_of[i]
        number = 2 if i in second else 1
        topic = rng.choice(TOPICS)
        withdrawn = i % 50 == 25
        published_at = moment - datetime.timedelta(days=1) if withdrawn else moment
        versions.append(Version(
            record=record, number=number, created_by=owner,
            state=Version.State.WITHDRAWN if withdrawn else Version.State.PUBLISHED,
            doi=f"{prefix}/seed.{record.public_id}.v{number}",
            title=f"Seeded record {i}: {topic}" + (" (revised)" if number == 2 else ""),
            description=(f"A notebook that re-analyses {topic} from public data, seeded for benchmarks. "
                         "It reads two data files, fits a model and plots the residuals; the figures in the "
                         "paper are cells 4 to 9."),
            resource_type=ResourceType.DATASET if i % 4 == 3 else ResourceType.NOTEBOOK,
            license=rng.choice(LICENSES), keywords=rng.sample(KEYWORDS, 2), container_image=IMAGE,
            notebook_path="analysis.ipynb",
            submitted_at=published_at - datetime.timedelta(hours=2), published_at=published_at,
            withdrawn_at=moment if withdrawn else None, public_changed_at=moment,
            withdrawal_reason="Withdrawn at the authors' request (seeded)." if withdrawn else "",
        ))
    Version.objects.bulk_create(versions, batch_size=1000)

    creators, reviews = [], []
    for i, version in zip(indices, versions, strict=True):
        for position in range(i % 3 + 1):
            family, given = rng.choice(FAMILY), rng.choice(GIVEN)
            creators.append(Creator(
                version=version, position=position, name=f"{family}, {given}", family_name=family,
                given_name=given, orcid=ORCID if position == 0 and i % 2 else "",
                affiliation=AFFILIATIONS[(i + position) % len(AFFILIATIONS)]))
        if i % 3 == 0:
            reviews.append(ReviewRequest(version=version, community=community, submitted_by=owner,
                                         state=ReviewRequest.State.ACCEPTED, closed_at=version.published_at))
    Creator.objects.bulk_create(creators, batch_size=2000)
    ReviewRequest.objects.bulk_create(reviews, batch_size=1000)
