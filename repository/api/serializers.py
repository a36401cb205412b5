"""Input serializers shape JSON into plain dicts for the services; output serializers describe responses.

Semantic validation (ORCID check digits, SPDX ids, pinned images, paths) happens in the services, so the
web forms and the API refuse the same things with the same messages.
"""

from collections.abc import Mapping

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from repository.models import DataReference, FileAccess, RelatedIdentifier, ResourceType, Version
from repository.selectors import version_access, version_metadata
from repository.services.file_access import MAX_EMBARGO_YEARS, MAX_REASON_CHARS


def _text(**kwargs):
    return serializers.CharField(required=False, allow_blank=True, trim_whitespace=True, **kwargs)


# An input object that refuses fields it does not know, naming them, instead of dropping them silently: a misspelt
# or misplaced field would otherwise be answered 2xx while nothing it said was saved. The schema says so
# (additionalProperties: false, by `strict_inputs_in_schema`). No docstring: the schema would show it on every input.
class StrictInput(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field; the fields are {', '.join(self.fields)}."] for name in unknown})
        return super().to_internal_value(data)


# The shapes the services accept (repository/validators.py), as OpenAPI patterns (a blank value is allowed beside
# them). Only the schema carries them: the services check the values, with the same messages for the web form and
# the API.
ORCID_PATTERN = r"^((https?://)?orcid\.org/)?[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{3}[0-9Xx]$"
ROR_PATTERN = r"^((https?://)?ror\.org/)?0[a-hj-km-np-tv-z0-9]{6}[0-9]{2}$"


@extend_schema_field({"type": "string", "pattern": ORCID_PATTERN})
class OrcidField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "pattern": ROR_PATTERN})
class RorField(serializers.CharField):
    pass


class CreatorInput(StrictInput):
    name = serializers.CharField(help_text="'Family, Given' for a person, or an organisation's name.")
    given_name = _text()
    family_name = _text()
    orcid = OrcidField(required=False, allow_blank=True, help_text="0000-0002-1825-0097 or "
                       "https://orcid.org/0000-0002-1825-0097; the check digit is verified.")
    affiliation = _text()
    affiliation_ror = RorField(required=False, allow_blank=True, help_text="https://ror.org/02mhbdp94 or 02mhbdp94; "
                               "the checksum is verified.")


class RelatedIdentifierInput(StrictInput):
    identifier = serializers.CharField()
    scheme = serializers.ChoiceField(choices=RelatedIdentifier.Scheme.choices)
    relation = serializers.ChoiceField(choices=RelatedIdentifier.Relation.choices)


class FundingInput(StrictInput):
    funder_name = serializers.CharField()
    funder_identifier = _text()
    award_number = _text()
    award_title = _text()


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class QueryField(serializers.JSONField):
    """An archive query document; the service checks that it is a non-empty object, and only on archive queries."""


class DataReferenceInput(StrictInput):
    kind = serializers.ChoiceField(choices=DataReference.Kind.choices)
    identifier = serializers.CharField(
        help_text="doi: a DOI; url: an https URL; repository_file: <record id>/[v<n>/]<path>; "
        "archive_query: the https URL of the archive's API endpoint."
    )
    query = QueryField(required=False, allow_null=True, help_text="archive_query only, and required there (refused "
                       "on the other kinds): the query document sent to the archive's API, a non-empty JSON object.")
    target_path = serializers.CharField(help_text="Where the notebook reads the data, relative to the notebook.")
    sha256 = _text(help_text="64 hex digits. Required except for repository_file, where it is taken from the file.")
    size = serializers.IntegerField(required=False, min_value=0, allow_null=True,
                                    help_text="Bytes. Required except for repository_file.")
    title = _text()


TOLERANCE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rtol": {"type": "number", "minimum": 0, "description": "Relative tolerance for numbers."},
        "atol": {"type": "number", "minimum": 0, "description": "Absolute tolerance for numbers."},
        "pixel_tolerance": {"type": "integer", "minimum": 0, "maximum": 255,
                            "description": "Per-channel difference up to which two pixels count as equal."},
        "max_differing_pixels": {"type": "number", "minimum": 0, "maximum": 1,
                                 "description": "Fraction of an image's pixels allowed to differ."},
    },
    "example": {"rtol": 1e-6},
}


@extend_schema_field(TOLERANCE_SCHEMA)
class ToleranceField(serializers.JSONField):
    """An object of tolerance overrides; the service checks the keys and values (runners/compare/numeric.py)."""


class IsoDateField(serializers.DateField):
    """A day as YYYY-MM-DD, handed to the services as that text (held corrections are kept as JSON)."""

    def __init__(self, **kwargs):
        super().__init__(input_formats=["iso-8601"], **kwargs)

    def to_internal_value(self, value):
        return super().to_internal_value(value).isoformat()


ACCESS_HELP = ("Who may read the files; the metadata, landing page, DOI and citation are public in every case. "
               "open: everyone. embargoed: the owners and moderators until embargo_until, then everyone (the "
               "files open on that day). restricted: the owners, moderators and those they grant access. Left out "
               "of a PUT, the access is kept. After publication it can only become more open (restricted, "
               "embargoed, open) and an embargo only end earlier.")


class AccessInput(StrictInput):
    files = serializers.ChoiceField(choices=FileAccess.choices)
    embargo_until = IsoDateField(
        required=False, allow_null=True, help_text="The day the files open (UTC), YYYY-MM-DD: required for "
        f"embargoed, null otherwise; after today and at most {MAX_EMBARGO_YEARS} years ahead.")
    embargo_reason = _text(max_length=MAX_REASON_CHARS, help_text="Why the files are closed, shown to readers "
                           "(embargoed or restricted); empty for open files.")


class AccessOutput(serializers.Serializer):
    files = serializers.ChoiceField(choices=FileAccess.choices)
    embargo_until = serializers.DateField(allow_null=True, help_text="The day an embargo ends; null unless "
                                          "embargoed.")
    embargo_reason = serializers.CharField(allow_blank=True)


@extend_schema_field(AccessOutput(help_text=ACCESS_HELP))
class AccessField(serializers.Field):
    """A version's access as `selectors.version_access` shows it (read-only)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, help_text=ACCESS_HELP, **kwargs)

    def to_representation(self, version: Version) -> dict:
        return version_access(version)


def metadata_without_access(version: Version) -> dict:
    """The metadata object of the API: `access` is beside it (as InvenioRDM has it), not inside."""
    metadata = version_metadata(version)
    metadata.pop("access", None)
    return metadata


class MetadataEnvelopeInput(StrictInput):
    """Metadata sent flat, or as GET answers it: the object around `metadata` (id, state, files, links...) with its
    read-only fields ignored, so that a client may PUT back what it read. Anything else around it is refused."""

    envelope_read_only: frozenset[str] = frozenset()
    envelope_kept: frozenset[str] = frozenset()  # fields of this input that the envelope holds beside `metadata`

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and isinstance(data.get("metadata"), Mapping):
            data = self._unwrapped(data)
        return super().to_internal_value(data)

    def _unwrapped(self, envelope: Mapping) -> dict:
        inner = envelope["metadata"]
        twice = sorted(str(name) for name in envelope if name in self.fields and name not in self.envelope_kept)
        twice += sorted(str(name) for name in self.envelope_kept if name in envelope and name in inner)
        if twice:
            raise serializers.ValidationError({name: ["Sent both inside `metadata` and beside it; send the metadata "
                                                      "either flat or as GET answers it."] for name in twice})
        unknown = sorted(str(name) for name in envelope if name != "metadata" and name not in self.envelope_kept
                         and name not in self.envelope_read_only)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return {**inner, **{name: envelope[name] for name in self.envelope_kept if name in envelope}}


class DraftMetadataInput(MetadataEnvelopeInput):
    """The whole metadata of a draft. PUT replaces it: fields left out are cleared, except `access`, which is kept.
    It may also be sent as GET answers a draft (the metadata under `metadata`, `access` beside it; id, state,
    files and links are ignored). Unknown fields are refused."""

    envelope_read_only = frozenset({"id", "version", "state", "doi", "created", "updated", "files",
                                    "missing_for_submission", "uploads", "links"})
    envelope_kept = frozenset({"access"})

    title = _text(max_length=500)
    description = _text()
    resource_type = serializers.ChoiceField(choices=ResourceType.choices, required=False)
    version_label = _text(max_length=50)
    license = _text(help_text="An SPDX license identifier, e.g. CC-BY-4.0.")
    keywords = serializers.ListField(child=serializers.CharField(), required=False)
    creators = CreatorInput(many=True, required=False)
    related_identifiers = RelatedIdentifierInput(many=True, required=False)
    funding = FundingInput(many=True, required=False)
    container_image = _text(help_text="registry/name@sha256:<64 hex>; a tag alone is refused.")
    notebook_path = _text(help_text="The path of a notebook (.ipynb) uploaded to this draft, to re-execute; "
                          "defaults to the first one uploaded. A path that names no uploaded notebook is refused.")
    data_references = DataReferenceInput(many=True, required=False)
    comparison_tolerance = ToleranceField(
        required=False, help_text="Overrides of the output comparison tolerance, e.g. {\"rtol\": 1e-6} for a notebook "
        "computing in single precision; keys left out keep the archive's defaults."
    )
    access = AccessInput(required=False, help_text=ACCESS_HELP)


class FileOutput(serializers.Serializer):
    path = serializers.CharField()
    state = serializers.SerializerMethodField(help_text="Always ready: uploads being sent or checked are listed "
                                                        "under the draft's uploads until then.")
    size = serializers.IntegerField(source="blob.size")
    sha256 = serializers.CharField(source="blob.sha256")
    md5 = serializers.CharField(source="blob.md5")
    created = serializers.DateTimeField()
    links = serializers.SerializerMethodField()

    def get_state(self, version_file) -> str:
        return "ready"

    def get_links(self, version_file) -> dict:
        request = self.context["request"]
        url = reverse("api:draft_file", kwargs={"record_id": version_file.version.record.public_id,
                                                 "file_path": version_file.path})
        return {"content": request.build_absolute_uri(url)}


class DraftOutput(serializers.Serializer):
    id = serializers.CharField(source="record.public_id")
    version = serializers.IntegerField(source="number")
    state = serializers.CharField()
    doi = serializers.CharField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    access = AccessField()
    metadata = serializers.SerializerMethodField()
    files = FileOutput(many=True)
    uploads = serializers.SerializerMethodField(help_text="Direct uploads that are not files yet: uploading, "
                                                          "checking, or failed (with the reason).")
    missing_for_submission = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_metadata(self, version: Version) -> dict:
        return metadata_without_access(version)

    def get_uploads(self, version: Version) -> list[dict]:
        return [{"id": str(upload.upload_id), "path": upload.path, "size": upload.size, "state": upload.state,
                 "message": upload.message} for upload in version.uploads.all() if upload.state != "ready"]

    def get_missing_for_submission(self, version: Version) -> list[str]:
        from repository.services.submission import draft_missing_for_submission

        return draft_missing_for_submission(version)

    def get_links(self, version: Version) -> dict:
        request = self.context["request"]
        record_id = version.record.public_id
        return {
            "self": request.build_absolute_uri(reverse("api:draft", kwargs={"record_id": record_id})),
            "files": request.build_absolute_uri(reverse("api:draft_files", kwargs={"record_id": record_id})),
            "html": request.build_absolute_uri(reverse("repository:draft_detail", kwargs={"record_id": record_id})),
        }


class UserRecordOutput(serializers.Serializer):
    id = serializers.CharField(source="record.public_id")
    version = serializers.IntegerField(source="number")
    state = serializers.CharField()
    title = serializers.CharField()
    doi = serializers.CharField()
    file_count = serializers.IntegerField()
    total_size = serializers.IntegerField(allow_null=True)
    updated = serializers.DateTimeField()


class ProblemFieldError(serializers.Serializer):
    field = serializers.CharField(help_text="Path of the field, e.g. creators[0].orcid")
    messages = serializers.ListField(child=serializers.CharField())


class ProblemOutput(serializers.Serializer):
    """An error, as RFC 9457 problem details (media type application/problem+json)."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_found, too_large.")
    errors = ProblemFieldError(many=True, required=False)


class RunOutput(serializers.Serializer):
    id = serializers.UUIDField(source="run_id")
    record = serializers.CharField(source="version.record.public_id")
    version = serializers.IntegerField(source="version.number")
    runner = serializers.CharField()
    container_image = serializers.CharField(help_text="The image the version pins; the local runner does not pull it.")
    notebook_path = serializers.CharField()
    status = serializers.CharField()
    verdict = serializers.CharField()
    message = serializers.CharField()
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    peak_memory_bytes = serializers.IntegerField(allow_null=True)
    links = serializers.SerializerMethodField()

    def get_links(self, run) -> dict:
        request = self.context["request"]
        links = {
            "self": request.build_absolute_uri(reverse("api:run", kwargs={"run_id": run.run_id})),
            "html": request.build_absolute_uri(reverse("repository:run_report", kwargs={"run_id": run.run_id})),
        }
        if run.executed_notebook_id:
            links["executed_notebook"] = request.build_absolute_uri(
                reverse("api:run_executed_notebook", kwargs={"run_id": run.run_id}))
        if run.external_url:
            links["pipeline"] = run.external_url
        if run.external_job_url:
            links["job"] = run.external_job_url
        return links


class PullProgressOutput(serializers.Serializer):
    done_bytes = serializers.IntegerField()
    total_bytes = serializers.IntegerField()


class RunDetailOutput(RunOutput):
    pull = serializers.SerializerMethodField(help_text="While the run pulls its image (RUNNER=image): bytes done and "
                                             "in all, updated about once a second; null otherwise.")
    environment = serializers.JSONField()

    @extend_schema_field(PullProgressOutput(allow_null=True))
    def get_pull(self, run) -> dict | None:
        pull = (run.environment or {}).get("pull") if run.status == run.Status.RUNNING else None
        if not isinstance(pull, dict):
            return None
        return {"done_bytes": int(pull.get("done_bytes") or 0), "total_bytes": int(pull.get("total_bytes") or 0)}
    report = serializers.JSONField()
    logs = serializers.CharField()
    staged_references = serializers.JSONField()


class SubmitInput(StrictInput):
    community = serializers.SlugField(required=False, help_text="The community to submit to; the default if absent.")


def _subclasses(cls) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def strict_inputs_in_schema(result, generator, request, public):
    """drf-spectacular postprocessing hook: the components of StrictInput serializers refuse other properties.
    Not DraftMetadataInput and its subclasses, which also take the envelope GET answers (said in their text)."""
    components = result.get("components", {}).get("schemas", {})
    for serializer in _subclasses(StrictInput):
        if issubclass(serializer, MetadataEnvelopeInput):
            continue
        name = serializer.__name__.removesuffix("Serializer")
        for component in (name, f"{name}Request"):
            if component in components and "properties" in components[component]:
                components[component]["additionalProperties"] = False
    return result


def with_problem_responses(success: dict, *codes: int) -> dict:
    """An extend_schema `responses` dict: the success response plus the problem+json answers (always 401, and 503
    with Retry-After while the database is unavailable: repository/web/errors.py)."""
    return {**success, **{(code, "application/problem+json"): ProblemOutput for code in (401, *codes, 503)}}
