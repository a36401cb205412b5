"""Forms of the deposit pages.

They only shape what the browser sends into the values `services.drafts` takes. Whether an ORCID, a licence or
an image reference is acceptable is decided by the services, so the web form and the REST API refuse the same
things with the same words. Every field is optional here for the same reason: the service says what is missing.
"""

from django import forms
from django.core.exceptions import ValidationError

from repository.json_input import json_loads_bounded
from repository.models import DataReference, FileAccess, RelatedIdentifier, ResourceType
from repository.services.file_access import MAX_EMBARGO_YEARS, MAX_REASON_CHARS
from repository.services.published import FROZEN_FIELDS, MAX_REASON_LENGTH

# Offered in the licence field's datalist; any other SPDX identifier may still be typed.
COMMON_LICENSES = [
    ("CC-BY-4.0", "Creative Commons Attribution 4.0"),
    ("CC0-1.0", "Creative Commons Zero 1.0 (public domain)"),
    ("CC-BY-SA-4.0", "Creative Commons Attribution Share-Alike 4.0"),
    ("CC-BY-NC-4.0", "Creative Commons Attribution Non-Commercial 4.0"),
    ("MIT", "MIT License"),
    ("Apache-2.0", "Apache License 2.0"),
    ("BSD-3-Clause", "BSD 3-Clause License"),
    ("BSD-2-Clause", "BSD 2-Clause License"),
    ("GPL-3.0-or-later", "GNU General Public License v3.0 or later"),
    ("LGPL-3.0-or-later", "GNU Lesser General Public License v3.0 or later"),
    ("MPL-2.0", "Mozilla Public License 2.0"),
    ("ODbL-1.0", "Open Database License 1.0"),
]

IMAGE_HELP = (
    "Must be pinned by digest: registry/name@sha256:<64 hex characters>. A tag alone (python:3.11) is refused "
    "because a tag can be moved to other contents."
)


def _with_blank(choices, label: str = "—") -> list[tuple[str, str]]:
    # A blank first choice keeps an untouched extra row "unchanged", so the formset can skip it.
    return [("", label), *choices]


def _text(label: str | None = None, **kwargs) -> forms.CharField:
    return forms.CharField(required=False, label=label, **kwargs)


class DraftMetadataForm(forms.Form):
    title = _text(max_length=500)
    description = _text(widget=forms.Textarea(attrs={"rows": 6}),
                        help_text="What the notebook does and how it relates to the paper or data it supports.")
    resource_type = forms.ChoiceField(choices=ResourceType.choices, required=False, label="Resource type")
    version_label = _text("Version label", max_length=50, help_text="Your own name for this version, e.g. v1.2.")
    license = _text("Licence", max_length=100,
                    help_text="One SPDX identifier, e.g. CC-BY-4.0 or MIT (see spdx.org/licenses).",
                    widget=forms.TextInput(attrs={"list": "spdx-licenses", "autocomplete": "off",
                                                  "spellcheck": "false"}))
    keywords = _text(help_text="Separate keywords with commas.")
    container_image = _text("Container image", max_length=600, help_text=IMAGE_HELP,
                            widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off",
                                                          "placeholder": "registry.example.org/group/image@sha256:…"}))
    notebook_path = forms.ChoiceField(required=False, label="Notebook to re-execute",
                                      help_text="One of the .ipynb files uploaded to this draft.")

    def __init__(self, *args, notebook_paths: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        label = "— upload a notebook first —" if not notebook_paths else "— choose a notebook —"
        self.fields["notebook_path"].choices = _with_blank([(p, p) for p in notebook_paths], label)

    comparison_tolerance = _text(
        "Comparison tolerance (JSON)", widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text='Optional overrides of how closely fresh outputs must match, e.g. {"rtol": 1e-6} for a notebook '
        "computing in single precision. Keys: rtol, atol, pixel_tolerance, max_differing_pixels.")

    # Who may read the files (services/file_access.py decides what is acceptable, as for the API).
    access_files = forms.ChoiceField(
        required=False, label="Access to the files", widget=forms.RadioSelect, initial=FileAccess.OPEN,
        choices=[(FileAccess.OPEN, "Open: anyone may download the files"),
                 (FileAccess.EMBARGOED, "Embargoed: the files open on a day you choose"),
                 (FileAccess.RESTRICTED, "Restricted: readers ask you for access")],
        help_text="The title, description, creators, DOI and citation are public in every case.")
    embargo_until = forms.DateField(
        required=False, label="Embargo ends on", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=f"Embargoed only: the day (UTC) the files open, at most {MAX_EMBARGO_YEARS} years ahead.")
    embargo_reason = _text("Why the files are closed", max_length=MAX_REASON_CHARS,
                           widget=forms.Textarea(attrs={"rows": 2, "maxlength": MAX_REASON_CHARS}),
                           help_text="Embargoed or restricted: shown to readers, e.g. “Until the paper is "
                           "published” or “Personal data: ask the authors”.")

    def access(self) -> dict | None:
        """The `access` of the metadata, or None when the form did not send it (the service then keeps it). A day
        or reason left in a field that does not apply to the chosen access is dropped, not refused."""
        files = self.cleaned_data.get("access_files")
        if not files:
            return None
        until = self.cleaned_data.get("embargo_until") if files == FileAccess.EMBARGOED else None
        reason = (self.cleaned_data.get("embargo_reason") or "").strip() if files != FileAccess.OPEN else ""
        return {"files": files, "embargo_until": until.isoformat() if until else None, "embargo_reason": reason}

    def clean_comparison_tolerance(self) -> dict:
        text = self.cleaned_data["comparison_tolerance"].strip()
        if not text:
            return {}
        try:
            return json_loads_bounded(text)
        except ValueError as exc:
            raise ValidationError(f"This is not valid JSON: {exc}.") from None

    def clean_keywords(self) -> list[str]:
        return [keyword.strip() for keyword in self.cleaned_data["keywords"].split(",") if keyword.strip()]


class CorrectionMetadataForm(DraftMetadataForm):
    """The metadata form of a published version's correction: without what was verified and accepted (the
    service refuses changes to it), with the reason kept in the audit trail."""

    reason = _text("Reason for the correction", max_length=MAX_REASON_LENGTH,
                   widget=forms.Textarea(attrs={"rows": 3, "maxlength": MAX_REASON_LENGTH}),
                   help_text="Optional, but it helps: it is kept with the before and after in the audit trail, "
                   "e.g. “Fixed the spelling of a creator’s name”.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in FROZEN_FIELDS:
            self.fields.pop(field, None)
        self.fields["access_files"].help_text = (
            "A published version's files can only become more open: restricted, then embargoed, then open; an "
            "embargo can only end earlier. The title, description, creators, DOI and citation stay public.")


class CreatorForm(forms.Form):
    name = _text(max_length=300, help_text="“Family, Given” for a person, or an organisation’s name.")
    given_name = _text("Given name", max_length=200)
    family_name = _text("Family name", max_length=200)
    orcid = _text("ORCID iD", max_length=40, help_text="0000-0002-1825-0097 or https://orcid.org/0000-0002-1825-0097",
                  widget=forms.TextInput(attrs={"spellcheck": "false"}))
    affiliation = _text(max_length=300)
    affiliation_ror = _text("Affiliation ROR id", max_length=40, help_text="e.g. https://ror.org/05a28rw58",
                            widget=forms.TextInput(attrs={"spellcheck": "false"}))


class RelatedIdentifierForm(forms.Form):
    identifier = _text(help_text="e.g. the DOI of the paper this notebook supports.",
                       widget=forms.TextInput(attrs={"spellcheck": "false"}))
    scheme = forms.ChoiceField(choices=_with_blank(RelatedIdentifier.Scheme.choices), required=False)
    relation = forms.ChoiceField(choices=_with_blank(RelatedIdentifier.Relation.choices), required=False,
                                 help_text="How this upload relates to it: IsSupplementTo a paper, Cites, …")


class FundingForm(forms.Form):
    funder_name = _text("Funder name")
    funder_identifier = _text("Funder identifier", help_text="e.g. its ROR id or Crossref Funder ID.")
    award_number = _text("Award number")
    award_title = _text("Award title")


class DataReferenceForm(forms.Form):
    kind = forms.ChoiceField(choices=_with_blank(DataReference.Kind.choices), required=False)
    identifier = _text(
        help_text="DOI: the DOI · URL: an https:// URL · file of this repository: <record id>/[v<n>/]<path> · "
        "archive query: the https:// URL of the archive's API endpoint.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    target_path = _text("Target path", help_text="Where the notebook reads it, relative, e.g. data/input.csv.",
                        widget=forms.TextInput(attrs={"spellcheck": "false"}))
    sha256 = _text("SHA-256", help_text="64 lower-case hex characters; taken from the file for a file of this "
                   "repository.", widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}))
    size = forms.IntegerField(required=False, min_value=0, label="Size (bytes)")
    title = _text(max_length=500)
    query = _text("Query (JSON)", help_text="Archive query only: the query document sent to the API, as a JSON object.",
                  widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))

    def clean_query(self):
        text = self.cleaned_data["query"]
        if not text:
            return None
        try:
            return json_loads_bounded(text)
        except ValueError as exc:
            raise ValidationError(f"This is not valid JSON: {exc}.") from None


def _formset(form, extra: int):
    # A section larger than the service's own limit (200 rows) is refused there, with its message.
    return forms.formset_factory(form, extra=extra, can_delete=True, max_num=200, absolute_max=400)


CreatorFormSet = _formset(CreatorForm, extra=2)
RelatedIdentifierFormSet = _formset(RelatedIdentifierForm, extra=1)
FundingFormSet = _formset(FundingForm, extra=1)
DataReferenceFormSet = _formset(DataReferenceForm, extra=1)


class NewUploadForm(forms.Form):
    title = _text(max_length=500, help_text="You can change it, and add everything else, on the next page.")


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “laptop” or “CI pipeline”.")
