"""Citations a reader copies or imports: CSL-JSON, formatted APA (text and HTML), BibTeX and RIS."""

import re

import pytest

from repository.exports.bibtex import version_bibtex
from repository.exports.citation import version_citation
from repository.exports.csl import version_csl_json
from repository.exports.ris import version_ris
from repository.models import ResourceType
from tests.factories import add_creator

from .conftest import ORCID

pytestmark = pytest.mark.django_db


@pytest.fixture
def cited(make_version):
    """A published notebook by a person with ORCID, a person with particles and an organisation."""
    version = make_version(version_label="v1.2", description="Line one.\nLine two.")
    add_creator(version, "Doe, Jane", given_name="Jane", family_name="Doe", orcid=ORCID)
    add_creator(version, "van der Berg, Anna")
    add_creator(version, "CERN & Friends")
    return version


def test_csl_json_names_people_and_organisations_and_dates_the_publication(cited, settings):
    item = version_csl_json(cited)

    assert item["type"] == "software"
    assert item["author"] == [{"family": "Doe", "given": "Jane"}, {"family": "van der Berg", "given": "Anna"},
                              {"literal": "CERN & Friends"}]
    assert item["issued"] == {"date-parts": [[2024, 5, 4]]}
    assert item["DOI"] == cited.doi
    assert item["URL"] == f"{settings.SITE_URL}/records/{cited.record.public_id}/versions/1/"
    assert (item["publisher"], item["version"], item["title"]) == ("nbarchive", "v1.2", cited.title)
    assert item["abstract"] == "Line one.\nLine two."


def test_a_dataset_is_a_csl_dataset(make_version):
    assert version_csl_json(make_version(resource_type=ResourceType.DATASET))["type"] == "dataset"


def test_apa_text_has_authors_year_title_publisher_and_doi_link(cited, settings):
    settings.DOI_PUBLISHER = "Example Archive"

    text = version_citation(cited)

    assert text.startswith("Doe, J., van der Berg, A., & CERN & Friends. (2024). ")
    assert cited.title in text and "(Version v1.2)" in text and "Example Archive" in text
    assert text.endswith(f"https://doi.org/{cited.doi}")


def test_apa_html_escapes_what_submitters_typed(make_version):
    version = make_version(title="<script>alert(1)</script> & the band gap")
    add_creator(version, "<b>Lab</b> & Co")
    add_creator(version, "O'Brien, Seán")

    rendered = version_citation(version, fmt="html")

    assert "<script" not in rendered and "<b>" not in rendered
    assert "<i>&lt;script&gt;alert(1)&lt;/script&gt; &amp; the band gap</i>" in rendered
    assert rendered.startswith("&lt;b&gt;Lab&lt;/b&gt; &amp; Co, &amp; O&#x27;Brien, S. (2024).")
    # The only tags left are the style's own.
    assert set(re.findall(r"</?([a-z]+)", rendered)) == {"i"}


def test_the_text_form_is_not_escaped(make_version):
    version = make_version(title="Heat & light")
    add_creator(version, "Doe, Jane")

    assert "Heat & light" in version_citation(version, fmt="text")


def test_other_styles_render_and_unknown_ones_are_refused(cited):
    assert "van der Berg" in version_citation(cited, "chicago-author-date")
    with pytest.raises(ValueError, match="Unknown citation style"):
        version_citation(cited, "no-such-style")
    with pytest.raises(ValueError, match="not a citation style name"):
        version_citation(cited, "../../../../etc/passwd")
    with pytest.raises(ValueError, match="Unknown citation format"):
        version_citation(cited, fmt="rtf")


def test_bibtex_escapes_latex_specials_and_keeps_names_whole(make_version):
    version = make_version(title=r"50% of {Ca} & Ti_2 for $5 #1 ~ ^ \ ", keywords=["A&B"])
    add_creator(version, "Müller, Jörg")
    add_creator(version, "CERN & Friends and Partners")

    entry = version_bibtex(version)

    assert r"title     = {50\% of \{Ca\} \& Ti\_2 for \$5 \#1 \~{} \^{} \textbackslash{} }," in entry
    assert r"author    = {Müller, Jörg and {CERN \& Friends and Partners}}," in entry
    assert r"keywords  = {A\&B}," in entry
    assert entry.count("{") == entry.count("}")
    assert entry.startswith(f"@software{{muller_2024_{version.record.public_id}_v1,")
    assert "  year      = 2024,\n" in entry and "  month     = may,\n" in entry
    assert f"  doi       = {{{version.doi}}},\n" in entry
    assert version_bibtex(version) == entry  # the same key and text every time


def test_bibtex_of_a_dataset_is_a_dataset_entry(make_version):
    assert version_bibtex(make_version(resource_type=ResourceType.DATASET)).startswith("@dataset{nbarchive_2024_")


def test_ris_lists_every_creator_and_ends_the_record(cited):
    ris = version_ris(cited)
    lines = ris.split("\r\n")

    assert lines[0] == "TY  - COMP"
    assert [line for line in lines if line.startswith("AU  - ")] == [
        "AU  - Doe, Jane", "AU  - van der Berg, Anna", "AU  - CERN & Friends"]
    assert f"TI  - {cited.title}" in lines and "PY  - 2024" in lines and "PB  - nbarchive" in lines
    assert f"DO  - {cited.doi}" in lines and f"UR  - https://doi.org/{cited.doi}" in lines
    assert "AB  - Line one. Line two." in lines  # one line: a break would start an unknown tag
    assert lines[-2:] == ["ER  - ", ""]


def test_ris_of_a_dataset_is_data(make_version):
    assert version_ris(make_version(resource_type=ResourceType.DATASET)).startswith("TY  - DATA\r\n")
