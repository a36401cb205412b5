"""Creating drafts and editing their metadata.

`record_create` starts a record with its first draft; `draft_update` replaces a draft's metadata, creators,
related identifiers and data references in one transaction. Both validate everything first and raise
InvalidInput with field-level messages (`creators[0].orcid`, `data_references[1].sha256`) before writing
anything, so a bad request changes nothing.
"""

import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from repository import validators
from repository.errors import Conflict, InvalidInput, PermissionDenied
from repository.models import Blob, Creator, DataReference, Record, RelatedIdentifier, Version, VersionFile
from repository.permissions import is_owner
from repository.services.audit import audit_event_append
from repository.services.dois import doi_reserve_for_draft
from repository.services.file_access import access_clean

VERSION_FIELDS = ("title", "description", "resource_type", "version_label", "license", "container_image",
                  "notebook_path")
MAX_KEYWORDS = 50
MAX_KEYWORD_LENGTH = 100
MAX_LIST_ITEMS = 200
# The description is repeated in every export, the landing page's meta tags and JSON-LD, OAI-PMH and DataCite:
# bounded so that none of them grows with whatever a request body can carry (2.5 MB was 7 MB of landing page).
MAX_DESCRIPTION_CHARS = 50_000
ARXIV_RE = re.compile(r"^(arXiv:)?(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?$", re.IGNORECASE)
HANDLE_RE = re.compile(r"^\d+(\.\d+)*/\S+$")
REPOSITORY_FILE_RE = re.compile(r"^(?P<record>[0-9a-z]{5}-[0-9a-z]{5})/(?:v(?P<number>\d+)/)?(?P<path>.+)$")


class _Errors:
    """Collects field errors under dotted paths, so one response lists every problem at once."""

    def __init__(self):
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def add_validation_error(self, prefix: str, error: ValidationError) -> None:
        if hasattr(error, "error_dict"):
            for field, messages in error.message_dict.items():
                self.add(f"{prefix}{field}" if field != "__all__" else prefix.rstrip(".") or "non_field_errors",
                         " ".join(messages))
        else:
            for message in error.messages:
                self.add(prefix.rstrip(".") or "non_field_errors", message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise InvalidInput("Some fields are not valid; nothing was saved.", field_errors=self.by_field)


def require_owner(actor, version: Version) -> None:
    """Only owners change a draft; callers check visibility first, this guards every write path."""
    if not is_owner(actor, version.record):
        raise PermissionDenied("Only the owners of a record can change its draft.")


def draft_lock_for_change(*, version: Version, actor) -> Version:
    """Lock the version's row for the rest of the transaction and check that `actor` may change it now."""
    version = Version.objects.select_for_update().get(pk=version.pk)
    require_owner(actor, version)
    if not version.is_editable:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; only drafts can be edited.")
    return version


@transaction.atomic
def record_create(*, owner, metadata: dict | None = None) -> Version:
    """Create a record owned by `owner` with an empty draft (version 1), optionally with metadata."""
    record = Record.objects.create()
    record.owners.add(owner)
    version = Version.objects.create(record=record, number=1, created_by=owner)
    doi_reserve_for_draft(version)
    audit_event_append(actor=owner, action="record.create", record=record, version=version)
    if metadata:
        version = draft_update(version=version, actor=owner, metadata=metadata)
    return version


@transaction.atomic
def draft_update(*, version: Version, actor, metadata: dict) -> Version:
    """Replace the draft's metadata with `metadata` (fields left out are cleared, as with HTTP PUT, except
    `access`, which is kept: services/file_access.py)."""
    version = draft_lock_for_change(version=version, actor=actor)
    metadata_write(version, metadata)
    audit_event_append(actor=actor, action="draft.update", version=version)
    return version


def metadata_write(version: Version, metadata: dict) -> None:
    """Validate `metadata` completely, then replace the version's metadata and rows with it. The caller holds
    the version's row lock and has checked that this kind of change is allowed."""
    errors = _Errors()

    for field in VERSION_FIELDS:
        value = metadata.get(field) or ""
        if not isinstance(value, str):
            errors.add(field, "Expected text.")
            value = ""
        setattr(version, field, value.strip())
    if len(version.description) > MAX_DESCRIPTION_CHARS:
        errors.add("description", f"At most {MAX_DESCRIPTION_CHARS:,} characters (this one has "
                                  f"{len(version.description):,}); put longer text in a file of the version.")
    if not version.resource_type:
        version.resource_type = Version._meta.get_field("resource_type").default
    version.comparison_tolerance = _clean_tolerance(metadata.get("comparison_tolerance") or {}, errors)
    version.keywords = _clean_keywords(metadata.get("keywords") or [], errors)
    version.funding = _clean_funding(metadata.get("funding") or [], errors)
    if metadata.get("access") is not None:  # left out: kept (services/file_access.py says why)
        access_clean(metadata["access"], version=version, errors=errors)
    try:
        version.full_clean(exclude=["record", "created_by", "number", "state", "doi"])
    except ValidationError as exc:
        errors.add_validation_error("", exc)
    if version.license and "license" not in errors.by_field:
        version.license = validators.normalize_spdx(version.license)
    if version.notebook_path and not VersionFile.objects.filter(version=version, path=version.notebook_path).exists():
        errors.add("notebook_path", f"No file '{version.notebook_path}' has been uploaded to this draft.")

    creators = _build_rows(Creator, metadata.get("creators") or [], "creators", errors, _clean_creator)
    related = _build_rows(RelatedIdentifier, metadata.get("related_identifiers") or [], "related_identifiers", errors,
                          _clean_related_identifier)
    references = _build_rows(DataReference, metadata.get("data_references") or [], "data_references", errors,
                             _clean_data_reference)
    _check_reference_targets(version, references, errors)
    errors.raise_if_any()

    version.save()
    for model, rows in ((Creator, creators), (RelatedIdentifier, related), (DataReference, references)):
        model.objects.filter(version=version).delete()
        for row in rows:
            row.version = version
        model.objects.bulk_create(rows)


def data_reference_clean(item, *, index: int) -> DataReference:
    """One data reference as the API takes it (`data_references[index]` in a draft's metadata), validated and
    resolved the same way, as an unsaved row; InvalidInput with the API's field errors. For verify_notebook."""
    errors = _Errors()
    rows = _build_rows(DataReference, [item], "data_references", errors, _clean_data_reference, start=index)
    errors.raise_if_any()
    return rows[0]


def _build_rows(model, items, prefix: str, errors: _Errors, clean, *, start: int = 0) -> list:
    """Turn a list of dicts into unsaved rows of `model`; `clean` normalises and resolves before validation."""
    if not isinstance(items, list):
        errors.add(prefix, "Expected a list.")
        return []
    if len(items) > MAX_LIST_ITEMS:
        errors.add(prefix, f"At most {MAX_LIST_ITEMS} entries.")
        return []
    fields = {f.name: f for f in model._meta.concrete_fields if f.name not in ("id", "version", "position")}
    rows = []
    for position, item in enumerate(items, start=start):
        item_prefix = f"{prefix}[{position}]."
        if not isinstance(item, dict):
            errors.add(f"{prefix}[{position}]", "Expected an object.")
            continue
        unknown = set(item) - set(fields)
        if unknown:
            errors.add(f"{prefix}[{position}]", f"Unknown field(s): {', '.join(sorted(unknown))}.")
            continue
        wrong_type = [name for name, value in item.items() if not _fits(fields[name], value)]
        for name in wrong_type:
            errors.add(f"{item_prefix}{name}", "Expected a whole number." if _is_integer_field(fields[name])
                       else "Expected text.")
        if wrong_type:
            continue
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in item.items() if v is not None}
        row = model(position=position, **values)
        already = set(errors.by_field)
        clean(row, item_prefix, errors)
        try:
            row.full_clean(exclude=["version"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                if f"{item_prefix}{name}" not in errors.by_field:
                    errors.add(f"{item_prefix}{name}", " ".join(messages))
        if set(errors.by_field) == already:
            rows.append(row)
    return rows


def _is_integer_field(field) -> bool:
    return field.get_internal_type() in ("IntegerField", "BigIntegerField", "PositiveIntegerField")


def _fits(field, value) -> bool:
    if value is None or field.get_internal_type() == "JSONField":
        return True
    if _is_integer_field(field):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def _clean_tolerance(overrides, errors: _Errors) -> dict:
    """Per-version overrides of the comparison tolerance, e.g. {"rtol": 1e-6} for a notebook using float32."""
    from repository.runners.compare import Tolerance
    from repository.services.verification import default_tolerance

    if not isinstance(overrides, dict):
        errors.add("comparison_tolerance", "Expected an object such as {\"rtol\": 1e-6}.")
        return {}
    try:
        Tolerance.from_dict(overrides, default=default_tolerance())
    except ValueError as exc:
        errors.add("comparison_tolerance", str(exc))
        return {}
    return overrides


def _clean_keywords(keywords, errors: _Errors) -> list[str]:
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        errors.add("keywords", "Expected a list of words or short phrases.")
        return []
    cleaned = []
    for keyword in (k.strip() for k in keywords):
        if len(keyword) > MAX_KEYWORD_LENGTH:
            errors.add("keywords", f"A keyword is longer than {MAX_KEYWORD_LENGTH} characters: '{keyword[:30]}…'.")
        elif keyword and keyword.lower() not in {c.lower() for c in cleaned}:
            cleaned.append(keyword)
    if len(cleaned) > MAX_KEYWORDS:
        errors.add("keywords", f"At most {MAX_KEYWORDS} keywords.")
    return cleaned


FUNDING_FIELDS = {"funder_name", "funder_identifier", "award_number", "award_title"}
MAX_FUNDING_VALUE_CHARS = 1000


def _clean_funding(funding, errors: _Errors) -> list[dict]:
    if not isinstance(funding, list):
        errors.add("funding", "Expected a list.")
        return []
    if len(funding) > MAX_LIST_ITEMS:  # as for the other lists: every export repeats them
        errors.add("funding", f"At most {MAX_LIST_ITEMS} entries.")
        return []
    cleaned = []
    for position, item in enumerate(funding):
        field = f"funding[{position}]"
        if not isinstance(item, dict) or set(item) - FUNDING_FIELDS:
            errors.add(field, f"Expected an object with {', '.join(sorted(FUNDING_FIELDS))}.")
            continue
        entry = {k: str(v).strip() for k, v in item.items() if v not in (None, "")}
        too_long = [k for k, v in entry.items() if len(v) > MAX_FUNDING_VALUE_CHARS]
        for name in too_long:
            errors.add(f"{field}.{name}", f"At most {MAX_FUNDING_VALUE_CHARS} characters.")
        if too_long:
            continue
        if not entry.get("funder_name"):
            errors.add(f"{field}.funder_name", "The funder's name is required.")
            continue
        cleaned.append(entry)
    return cleaned


def _clean_creator(creator: Creator, prefix: str, errors: _Errors) -> None:
    if creator.orcid:
        creator.orcid = validators.normalize_orcid(creator.orcid)
    if creator.affiliation_ror:
        creator.affiliation_ror = validators.normalize_ror(creator.affiliation_ror)
        if not creator.affiliation:
            errors.add(f"{prefix}affiliation", "Give the affiliation's name along with its ROR id.")


def _clean_related_identifier(related: RelatedIdentifier, prefix: str, errors: _Errors) -> None:
    field = f"{prefix}identifier"
    if related.scheme == RelatedIdentifier.Scheme.DOI:
        try:
            validators.validate_doi(related.identifier)
            related.identifier = validators.normalize_doi(related.identifier)
        except ValidationError as exc:
            errors.add(field, exc.messages[0])
    elif related.scheme == RelatedIdentifier.Scheme.URL:
        if not _is_url(related.identifier, ("http", "https")):
            errors.add(field, "Enter a full http(s) URL.")
    elif related.scheme == RelatedIdentifier.Scheme.ARXIV:
        if not ARXIV_RE.match(related.identifier):
            errors.add(field, "Enter an arXiv id such as arXiv:2101.00001.")
    elif related.scheme == RelatedIdentifier.Scheme.HANDLE and not HANDLE_RE.match(related.identifier):
        errors.add(field, "Enter a Handle such as 11304/1234-abcd.")


def _clean_data_reference(reference: DataReference, prefix: str, errors: _Errors) -> None:
    reference.target_path = validators.normalize_file_path(reference.target_path)
    field = f"{prefix}identifier"
    kind = reference.kind
    if kind == DataReference.Kind.DOI:
        try:
            validators.validate_doi(reference.identifier)
            reference.identifier = validators.normalize_doi(reference.identifier)
        except ValidationError as exc:
            errors.add(field, exc.messages[0])
    elif kind in (DataReference.Kind.URL, DataReference.Kind.ARCHIVE_QUERY):
        problem = _public_https_url_problem(reference.identifier)
        if problem:
            errors.add(field, problem)
    elif kind == DataReference.Kind.REPOSITORY_FILE:
        _resolve_repository_file(reference, field, errors)
    if kind != DataReference.Kind.REPOSITORY_FILE:
        # Outside data can only be verified against a checksum the submitter gives; ours is taken from the blob.
        for name in ("sha256", "size"):
            if getattr(reference, name) in (None, ""):
                errors.add(f"{prefix}{name}", "Required for this kind of reference.")
    if kind == DataReference.Kind.ARCHIVE_QUERY:
        if not isinstance(reference.query, dict) or not reference.query:
            errors.add(f"{prefix}query", "An archive query needs its query document as a non-empty JSON object.")
    elif reference.query is not None:
        errors.add(f"{prefix}query", "Only archive_query references carry a query.")


def _is_url(value: str, schemes) -> bool:
    try:
        URLValidator(schemes=list(schemes))(value)
    except ValidationError:
        return False
    return True


def _public_https_url_problem(url: str) -> str | None:
    """Refuse early what staging would refuse anyway; staging re-checks after DNS resolution."""
    try:
        validators.validate_public_https_url(url)
    except ValidationError as exc:
        return exc.messages[0]
    return None


def _resolve_repository_file(reference: DataReference, field: str, errors: _Errors) -> None:
    """A file of a published version here: fill in (or check) its checksum and size from our own blob."""
    match = REPOSITORY_FILE_RE.match(reference.identifier)
    if not match:
        errors.add(field, "Name a file of this repository as <record id>/<path> or <record id>/v<number>/<path>.")
        return
    versions = Version.objects.filter(record__public_id=match["record"], state=Version.State.PUBLISHED)
    if match["number"]:
        versions = versions.filter(number=int(match["number"]))
    version = versions.order_by("-number").first()
    if version is None:
        errors.add(field, _no_published_version(match["record"], match["number"]))
        return
    blob = Blob.objects.filter(version_files__version=version, version_files__path=match["path"]).first()
    if blob is None:
        errors.add(field, f"Version {version.number} of record {match['record']} has no file '{match['path']}'.")
        return
    reference.identifier = f"{match['record']}/v{version.number}/{match['path']}"
    if reference.sha256 and reference.sha256 != blob.sha256:
        errors.add(field.replace("identifier", "sha256"),
                   f"The file's SHA-256 is {blob.sha256}; leave the field empty to take it from the file.")
    reference.sha256, reference.size = blob.sha256, blob.size


def _no_published_version(record_id: str, number: str | None) -> str:
    withdrawn = Version.objects.filter(record__public_id=record_id, state=Version.State.WITHDRAWN)
    if number:
        withdrawn = withdrawn.filter(number=int(number))
    if withdrawn.exists():
        gone = (f"Version {number} of record {record_id} was withdrawn; its files" if number
                else f"The versions of record {record_id} were withdrawn; their files")
        return f"{gone} can no longer be referenced. Reference another version or another copy of the data."
    return f"Record {record_id} has no published version{' ' + number if number else ''}."


def draft_reference_problems(version: Version) -> dict[str, list[str]]:
    """Field errors for the draft's repository_file references whose version is no longer published (withdrawn
    since the reference was saved); checked again at submission, since withdrawing does not touch other drafts."""
    problems: dict[str, list[str]] = {}
    for reference in version.data_references.filter(kind=DataReference.Kind.REPOSITORY_FILE):
        match = REPOSITORY_FILE_RE.match(reference.identifier)
        if not match or not match["number"]:
            continue  # saved references always name their version; anything else was refused when saved
        if not Version.objects.filter(record__public_id=match["record"], number=int(match["number"]),
                                      state=Version.State.PUBLISHED).exists():
            problems[f"data_references[{reference.position}].identifier"] = [
                _no_published_version(match["record"], match["number"])]
    return problems


def _check_reference_targets(version: Version, references: list[DataReference], errors: _Errors) -> None:
    seen: dict[str, int] = {}
    uploaded = set(VersionFile.objects.filter(version=version).values_list("path", flat=True))
    for reference in references:
        field = f"data_references[{reference.position}].target_path"
        if reference.target_path in seen:
            errors.add(field, f"Another data reference is already staged at '{reference.target_path}'.")
        elif reference.target_path in uploaded:
            errors.add(field, f"An uploaded file already has the path '{reference.target_path}'.")
        seen[reference.target_path] = reference.position
