"""Builders of the objects tests start from.

Two kinds, kept apart because they answer different needs:
- Rows written straight through the ORM (`UserFactory`, `RecordFactory`, `VersionFactory`, `add_creator`,
  `add_file`, ...): fast, and enough for code that only reads, such as the exports. No bytes are stored.
- Objects brought about by the real services (`upload`, `demo_draft`, `accept`, `published_version`,
  `submitted_review`): files really stored, audit events and DOI outbox rows written, as a user's actions
  would leave them.
"""

import hashlib
import io
import json

import factory
from django.contrib.auth import get_user_model
from django.db.models import F

from moderation.services import review_submit
from repository import demo
from repository.models import Blob, Creator, DataReference, DoiOutbox, Record, RelatedIdentifier, Version, VersionFile
from repository.services.dois import doi_sync
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from repository.services.versions import version_publish

# A pinned container image, as a complete draft must name one.
IMAGE = "registry.example.org/group/image@sha256:" + "a" * 64


# Rows through the ORM

class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Record
        skip_postgeneration_save = True

    @factory.post_generation
    def owners(self, create, extracted, **kwargs):
        if create and extracted:
            self.owners.add(*extracted)


class VersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Version

    record = factory.SubFactory(RecordFactory)
    number = 1
    created_by = factory.SubFactory(UserFactory)
    title = "Band gaps of perovskites"


def add_creator(version, name, **fields) -> Creator:
    return Creator.objects.create(version=version, position=version.creators.count(), name=name, **fields)


def add_related(version, identifier, scheme, relation) -> RelatedIdentifier:
    return RelatedIdentifier.objects.create(version=version, position=version.related_identifiers.count(),
                                            identifier=identifier, scheme=scheme, relation=relation)


def add_reference(version, kind, identifier, target_path, **fields) -> DataReference:
    return DataReference.objects.create(version=version, position=version.data_references.count(), kind=kind,
                                        identifier=identifier, target_path=target_path,
                                        sha256=hashlib.sha256(identifier.encode()).hexdigest(), size=10, **fields)


def add_file(version, path, content: bytes) -> VersionFile:
    """A file row and its blob row; the bytes themselves are not put into storage (see `upload` for that)."""
    sha256 = hashlib.sha256(content).hexdigest()
    blob, _ = Blob.objects.get_or_create(sha256=sha256, defaults={
        "md5": hashlib.md5(content).hexdigest(), "size": len(content), "storage_key": f"blobs/{sha256}"})
    return VersionFile.objects.create(version=version, path=path, blob=blob)


# Notebooks

def notebook_bytes(cells: int = 2) -> bytes:
    """A small, valid nbformat 4.5 notebook with code cells and stored outputs."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    notebook = new_notebook(
        cells=[new_markdown_cell("# Analysis")]
        + [
            new_code_cell(f"print({i} * 2)", execution_count=i + 1,
                          outputs=[new_output("stream", name="stdout", text=f"{i * 2}\n")])
            for i in range(cells)
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    return nbformat.writes(notebook).encode()


def notebook_dict(cells: int = 2) -> dict:
    return json.loads(notebook_bytes(cells))


def png_base64(size=(8, 6), colour=(200, 30, 30)) -> str:
    """A real PNG image, base64-encoded as a notebook's image/png output carries it."""
    import base64

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


# Objects through the services

def upload(version, user, path: str = "nb.ipynb", data: bytes | None = None) -> VersionFile:
    """Upload a file into a draft as its owner would (stored and checksummed); a small notebook by default."""
    data = notebook_bytes() if data is None else data
    return draft_file_upload(version=version, actor=user, path=path, stream=io.BytesIO(data), content_length=len(data))


def demo_draft(user, **metadata) -> Version:
    """A complete draft of a new record owned by `user`: the demo notebook, its data and every required field,
    so it can be submitted, run and published; `metadata` overrides or adds fields."""
    version = record_create(owner=user, metadata={
        "title": "Thermal expansion", "description": "Demo", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE, **metadata,
    })
    upload(version, user, "thermal.ipynb", demo.notebook())
    upload(version, user, demo.DATA_PATH, demo.measurements_csv())
    return Version.objects.get(pk=version.pk)


def accept(version: Version, moderator) -> Version:
    """What a moderator's approval does to the version (the review request itself is not needed here)."""
    Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)
    return version_publish(version=version, actor=moderator)


def sync_pending(provider=None) -> list[str]:
    """Run the DOI sync of every pending outbox row once, as the Celery task would; returns the outcomes."""
    pending = DoiOutbox.objects.filter(synced_generation__lt=F("generation")).order_by("pk")
    return [doi_sync(outbox_pk=pk, provider=provider) for pk in pending.values_list("pk", flat=True)]


def published_version(owner, moderator, provider=None, *, extra_files: dict[str, bytes] | None = None,
                      **metadata) -> Version:
    """A published version of a new record: the demo draft plus `extra_files` (path -> bytes), accepted, DOIs
    synced."""
    version = demo_draft(owner, **metadata)
    for path, data in (extra_files or {}).items():
        upload(version, owner, path, data)
    version = accept(version, moderator)
    sync_pending(provider)
    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED, version.doi_outbox.last_error
    return version


def published_with_access(owner, moderator, access: str, embargo_until=None, **metadata) -> Version:
    """A published version of a new record whose files have `access` (a FileAccess value) from its deposit on."""
    draft = demo_draft(owner, **metadata)
    Version.objects.filter(pk=draft.pk).update(access_files=access, embargo_until=embargo_until)
    version = accept(draft, moderator)
    sync_pending()
    version.refresh_from_db()
    return version


def submitted_review(author, community=None, **metadata):
    """A review request for a new demo draft of `author`, submitted to `community` (or to none)."""
    return review_submit(version=demo_draft(author, **metadata), actor=author, community=community)
