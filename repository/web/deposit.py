"""The deposit form of a draft: one metadata form plus one formset per repeatable section.

`DepositForm` turns what the browser sent into the metadata dict `services.drafts.draft_update` takes, and puts
the service's field errors (`creators[1].orcid`, `data_references[0].sha256`) back on the field of the row the
user typed them in. Blank rows are left out before the service sees the list, so the service's positions are
not the formset's: the mapping between the two is kept while the dict is built.

With `correction=True` it is the form of a published version's metadata correction
(`services.published.version_correct_metadata`): the fields that were verified and accepted (`FROZEN_FIELDS`)
are neither shown as inputs nor sent, so whatever a crafted POST carries for them never reaches the service,
and a "reason" field is added; it is not metadata, so it is read from `reason`, not from `metadata()`.
"""

import json
import re

from django import forms

from repository.models import Version
from repository.services.published import FROZEN_FIELDS
from repository.web.forms import (
    COMMON_LICENSES,
    CorrectionMetadataForm,
    CreatorFormSet,
    DataReferenceFormSet,
    DraftMetadataForm,
    FundingFormSet,
    RelatedIdentifierFormSet,
)

# Formset prefixes are the service's own keys, so an error path names its formset directly.
SECTIONS = {
    "creators": CreatorFormSet,
    "related_identifiers": RelatedIdentifierFormSet,
    "funding": FundingFormSet,
    "data_references": DataReferenceFormSet,
}
TEXT_FIELDS = ("title", "description", "resource_type", "version_label", "license", "container_image",
               "notebook_path")
# The service's access errors (`access.files`), on the form's fields.
ACCESS_ERROR_FIELDS = {"access": "access_files", "access.files": "access_files",
                       "access.embargo_until": "embargo_until", "access.embargo_reason": "embargo_reason"}
ROW_ERROR_RE = re.compile(r"^(?P<section>\w+)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?$")


class DepositForm:
    def __init__(self, version: Version, data=None, *, correction: bool = False):
        frozen = FROZEN_FIELDS if correction else ()
        notebook_paths = [f.path for f in version.files.all() if f.is_notebook]
        if version.notebook_path and version.notebook_path not in notebook_paths:
            notebook_paths.append(version.notebook_path)  # set through the API; keep it selectable
        bound = data is not None
        form_class = CorrectionMetadataForm if correction else DraftMetadataForm
        self.form = form_class(data, initial=None if bound else _version_initial(version),
                               notebook_paths=notebook_paths)
        self.formsets = {
            name: formset_class(data, prefix=name, initial=None if bound else _rows_initial(version, name))
            for name, formset_class in SECTIONS.items() if name not in frozen
        }
        # Errors the service reported about a whole section, or about something no field shows.
        self.section_errors: dict[str, list[str]] = {}
        self.other_errors: list[str] = []
        self._sent_rows: dict[str, list[forms.Form]] = {}

    def is_valid(self) -> bool:
        results = [self.form.is_valid()] + [formset.is_valid() for formset in self.formsets.values()]
        return all(results)

    def metadata(self) -> dict:
        """The dict for draft_update (or, in correction mode, version_correct_metadata, without the frozen
        fields). Call after is_valid(); remembers which row became which list position."""
        cleaned = self.form.cleaned_data
        metadata = {field: cleaned.get(field) or "" for field in TEXT_FIELDS if field in self.form.fields}
        metadata["keywords"] = cleaned.get("keywords") or []
        if "comparison_tolerance" in self.form.fields:
            metadata["comparison_tolerance"] = cleaned.get("comparison_tolerance") or {}
        access = self.form.access()
        if access is not None:
            metadata["access"] = access
        for name, formset in self.formsets.items():
            rows, sent = [], []
            for form in formset.forms:
                values = _row_values(form)
                if values:
                    rows.append(values)
                    sent.append(form)
            metadata[name] = rows
            self._sent_rows[name] = sent
        return metadata

    @property
    def reason(self) -> str:
        """The correction's reason (correction mode only). Call after is_valid()."""
        return (self.form.cleaned_data.get("reason") or "").strip()

    def add_service_errors(self, field_errors: dict[str, list[str]]) -> None:
        for path, messages in field_errors.items():
            if not self._attach_error(path, messages):
                self.other_errors.extend(f"{path}: {message}" for message in messages)

    def _attach_error(self, path: str, messages: list[str]) -> bool:
        path = ACCESS_ERROR_FIELDS.get(path, path)
        if path in self.form.fields:
            self.form.add_error(path, messages)
            return True
        if path == "non_field_errors":
            self.form.add_error(None, messages)
            return True
        if path in self.formsets:
            self.section_errors.setdefault(path, []).extend(messages)
            return True
        match = ROW_ERROR_RE.match(path)
        if not match or match["section"] not in self._sent_rows:
            return False
        sent = self._sent_rows[match["section"]]
        index = int(match["index"])
        if index >= len(sent):
            return False
        row_form = sent[index]
        field = match["field"]
        row_form.add_error(field if field in row_form.fields else None, messages)
        return True

    @property
    def has_errors(self) -> bool:
        return bool(
            self.form.errors
            or any(formset.total_error_count() for formset in self.formsets.values())
            or self.section_errors
            or self.other_errors
        )


def deposit_page_context(version: Version, deposit: DepositForm) -> dict:
    """What the draft edit page and the correction page both show around a deposit form."""
    return {
        "version": version,
        "record_id": version.record.public_id,
        "deposit": deposit,
        "form": deposit.form,
        "formsets": deposit.formsets,
        "common_licenses": COMMON_LICENSES,
    }


def _row_values(form: forms.Form) -> dict:
    """The non-empty values of a formset row; empty for a blank, untouched or removed row."""
    cleaned = getattr(form, "cleaned_data", None) or {}
    if cleaned.get("DELETE"):
        return {}
    return {name: value for name, value in cleaned.items() if name != "DELETE" and value not in ("", None)}


def _version_initial(version: Version) -> dict:
    initial = {field: getattr(version, field) for field in TEXT_FIELDS}
    initial["keywords"] = ", ".join(version.keywords or [])
    initial["comparison_tolerance"] = json.dumps(version.comparison_tolerance) if version.comparison_tolerance else ""
    initial.update(access_files=version.access_files, embargo_until=version.embargo_until,
                   embargo_reason=version.embargo_reason)
    return initial


def _rows_initial(version: Version, section: str) -> list[dict]:
    if section == "creators":
        fields = ("name", "given_name", "family_name", "orcid", "affiliation", "affiliation_ror")
        return [{f: getattr(c, f) for f in fields} for c in version.creators.all()]
    if section == "related_identifiers":
        return [{"identifier": r.identifier, "scheme": r.scheme, "relation": r.relation}
                for r in version.related_identifiers.all()]
    if section == "funding":
        return [dict(entry) for entry in version.funding or []]
    return [
        {"kind": d.kind, "identifier": d.identifier, "target_path": d.target_path, "sha256": d.sha256,
         "size": d.size, "title": d.title, "query": "" if d.query is None else json.dumps(d.query, indent=2)}
        for d in version.data_references.all()
    ]
