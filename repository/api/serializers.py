"""Input serializers shape JSON into plain dicts for the services; output serializers describe responses.

Semantic validation (ORCID check digits, SPDX ids, pinned images, paths) happens in the services, so the
web forms and the API refuse the same things with the same messages.
"""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from repository.models import DataReference, RelatedIdentifier, ResourceType, Version
from repository.selectors import version_metadata


def _text(**kwargs):
    return serializers.CharField(required=False, allow_blank=True, trim_whitespace=True, **kwargs)


class CreatorInput(serializers.Serializer):
    name = serializers.CharField(help_text="'Family, Given' for a person, or an organisation's name.")
    given_name = _text()
    family_name = _text()
    orcid = _text(help_text="0000-0002-1825-0097 or https://orcid.org/0000-0002-1825-0097")
    affiliation = _text()
    affiliation_ror = _text(help_text="https://ror.org/02mhbdp94 or 02mhbdp94")


class RelatedIdentifierInput(serializers.Serializer):
    identifier = serializers.CharField()
    scheme = serializers.ChoiceField(choices=RelatedIdentifier.Scheme.choices)
    relation = serializers.ChoiceField(choices=RelatedIdentifier.Relation.choices)


class FundingInput(serializers.Serializer):
    funder_name = serializers.CharField()
    funder_identifier = _text()
    award_number = _text()
    award_title = _text()


class DataReferenceInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=DataReference.Kind.choices)
    identifier = serializers.CharField(
        help_text="doi: a DOI; url: an https URL; repository_file: <record id>/[v<n>/]<path>; "
        "archive_query: the https URL of the archive's API endpoint."
    )
    query = serializers.JSONField(required=False, allow_null=True, help_text="archive_query only.")
    target_path = serializers.CharField(help_text="Where the notebook reads the data, relative to the notebook.")
    sha256 = _text(help_text="Required except for repository_file, where it is taken from the file.")
    size = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    title = _text()


class DraftMetadataInput(serializers.Serializer):
    """The whole metadata of a draft. PUT replaces it: fields left out are cleared."""

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
    notebook_path = _text(help_text="The uploaded notebook to re-execute; defaults to the first one uploaded.")
    data_references = DataReferenceInput(many=True, required=False)
    comparison_tolerance = serializers.JSONField(
        required=False, help_text="Overrides of the output comparison tolerance: rtol, atol, pixel_tolerance, "
        "max_differing_pixels, e.g. {\"rtol\": 1e-6}."
    )


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
    metadata = serializers.SerializerMethodField()
    files = FileOutput(many=True)
    uploads = serializers.SerializerMethodField(help_text="Direct uploads that are not files yet: uploading, "
                                                          "checking, or failed (with the reason).")
    missing_for_submission = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_metadata(self, version: Version) -> dict:
        return version_metadata(version)

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


class SubmitInput(serializers.Serializer):
    community = serializers.SlugField(required=False, help_text="The community to submit to; the default if absent.")


def with_problem_responses(success: dict, *codes: int) -> dict:
    """An extend_schema `responses` dict: the success response plus the problem+json answers (always 401)."""
    return {**success, **{(code, "application/problem+json"): ProblemOutput for code in (401, *codes)}}
