"""Citing and downloading a published version from its landing page: export files with real names, the citation
in a style the reader picks, and "Download all" as one RO-Crate zip, streamed from local storage or S3."""

import hashlib
import io
import json
import os
import re
import zipfile

import pytest
from django.urls import reverse

from repository.models import Blob, VersionFile
from repository.selectors import version_metadata
from repository.services.published import version_correct_metadata, version_withdraw
from tests.factories import UserFactory, published_version

pytestmark = pytest.mark.django_db

ORCID = "0000-0002-1825-0097"
CREATORS = [
    {"name": "Doe, Jane", "given_name": "Jane", "family_name": "Doe", "orcid": ORCID,
     "affiliation": "University of Example", "affiliation_ror": "02mhbdp94"},
    {"name": "Roe, Richard", "affiliation": "Institute of Tests"},
]
RELATED = [{"identifier": "10.1234/paper.5678", "scheme": "DOI", "relation": "IsSupplementTo"},
           {"identifier": "https://example.org/blog/post", "scheme": "URL", "relation": "IsDocumentedBy"}]
REFERENCE = {"kind": "url", "identifier": "https://data.example.org/lengths.csv", "target_path": "input/lengths.csv",
             "sha256": "c" * 64, "size": 1234, "title": "Rod lengths"}


@pytest.fixture(autouse=True)
def local_registrar(settings, tmp_path):
    settings.DOI_PROVIDER = "local"
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True)


@pytest.fixture
def published(user, admin):
    return published_version(user, admin, title="Thermal expansion of copper", creators=CREATORS,
                             related_identifiers=RELATED, data_references=[REFERENCE], keywords=["copper"])


def url(name, version, **kwargs):
    return reverse(f"repository:{name}", kwargs={"record_id": version.record.public_id, "number": version.number,
                                                 **kwargs})


def landing(client, version, **params):
    return client.get(reverse("repository:record_landing", kwargs={"record_id": version.record.public_id}),
                      params)


# --- Export files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "extension", "media_type", "marker"), [
    ("bibtex", "bib", "application/x-bibtex", "@software{"),
    ("ris", "ris", "application/x-research-info-systems", "TY  - "),
    ("datacite-json", "json", "application/vnd.datacite.datacite+json", '"titles"'),
    ("datacite-xml", "xml", "application/vnd.datacite.datacite+xml", "<resource"),
    ("csl", "csl.json", "application/vnd.citationstyles.csl+json", '"DOI"'),
    ("jsonld", "jsonld", "application/ld+json", '"@context"'),
])
def test_export_links_download_a_file_named_after_the_record_and_version(client, published, fmt, extension,
                                                                         media_type, marker):
    html = landing(client, published).content.decode()
    link = url("version_export", published, fmt=fmt)
    assert f'href="{link}" download' in html

    response = client.get(link)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(media_type)
    filename = f"{published.record.public_id}-v1.{extension}"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    body = response.content.decode()
    assert marker in body and published.doi.lower() in body.lower()


def test_an_unknown_export_format_is_a_404_that_names_the_formats(client, published):
    response = client.get(url("version_export", published, fmt="docx"))
    assert response.status_code == 404


# --- The citation box ---------------------------------------------------------------------------------------

def citation(response) -> str:
    return re.search(r'<p class="citation" id="citation">(.*?)</p>', response.content.decode(), re.S).group(1)


def test_the_reader_picks_a_citation_style(client, published):
    apa = citation(landing(client, published))
    assert "Doe, J." in apa and "(Version 1)" in apa
    seen = {apa}
    for style in ("chicago-author-date", "ieee", "harvard-cite-them-right", "elsevier-vancouver"):
        response = landing(client, published, style=style)
        assert response.status_code == 200
        text = citation(response)
        assert "thermal expansion of copper" in text.lower() and text not in seen, style
        seen.add(text)
        assert f'<option value="{style}" selected>' in response.content.decode()
    # IEEE puts initials first; Vancouver, family name then initials without a comma.
    assert "J. Doe" in citation(landing(client, published, style="ieee"))
    assert "Doe J" in citation(landing(client, published, style="elsevier-vancouver"))


def test_any_csl_style_can_be_typed_and_an_unknown_one_is_a_clear_400(client, published):
    # The box sends the list's value and the typed one; the typed one wins.
    typed = client.get(reverse("repository:record_landing", kwargs={"record_id": published.record.public_id}),
                       {"style": ["apa", "nature"]})
    assert typed.status_code == 200 and citation(typed) != citation(landing(client, published))
    assert 'value="nature"' in typed.content.decode()

    unknown = landing(client, published, style="no-such-style")
    assert unknown.status_code == 400
    text = unknown.content.decode()
    assert "Unknown citation style &#x27;no-such-style&#x27;." in text and 'aria-invalid="true"' in text
    assert "Doe, J." in citation(unknown)  # still cited, in APA
    hostile = landing(client, published, style="../../etc/passwd")
    assert hostile.status_code == 400 and "is named by its CSL id" in hostile.content.decode()


def test_a_correction_shows_in_the_cached_citation_at_once(client, published, user):
    assert "Thermal expansion of copper" in citation(landing(client, published, style="ieee"))
    version_correct_metadata(version=published, actor=user, reason="Typo",
                             metadata={**version_metadata(published), "title": "Thermal expansion of brass"})
    corrected = citation(landing(client, published, style="ieee"))
    assert "Thermal expansion of brass" in corrected and "copper" not in corrected


# --- What the landing page used to leave out ----------------------------------------------------------------

def test_the_landing_page_shows_affiliations_and_related_identifiers(client, published):
    html = landing(client, published).content.decode()
    creators = html[html.index('id="creators"'):html.index("</p>", html.index('id="creators"'))]
    assert '<a href="https://ror.org/02mhbdp94" rel="noopener">University of Example</a>' in creators
    assert "Roe, Richard" in creators and "(Institute of Tests)" in creators
    related = html[html.index('id="related-identifiers"'):html.index("</ul>", html.index('id="related-identifiers"'))]
    assert ('Is supplement to: <a href="https://doi.org/10.1234/paper.5678" rel="noopener" class="break">'
            '10.1234/paper.5678</a>') in related
    assert 'Is documented by: <a href="https://example.org/blog/post"' in related


# --- Download all -------------------------------------------------------------------------------------------

def download_all(client, version) -> zipfile.ZipFile:
    response = client.get(url("version_crate", version))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{version.record.public_id}-v1.zip"'
    body = b"".join(response.streaming_content)
    assert len(body) == int(response["Content-Length"])
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    return archive


def check_crate(archive: zipfile.ZipFile, version) -> None:
    files = {f.path: f.blob for f in version.files.select_related("blob")}
    assert sorted(archive.namelist()) == sorted(["ro-crate-metadata.json", *files])
    for path, blob in files.items():
        assert hashlib.sha256(archive.read(path)).hexdigest() == blob.sha256
    metadata = json.loads(archive.read("ro-crate-metadata.json"))
    assert re.fullmatch(r"https://w3id\.org/ro/crate/1\.\d/context", metadata["@context"])
    graph = {entity["@id"]: entity for entity in metadata["@graph"]}
    root = graph["./"]
    assert root["name"] == "Thermal expansion of copper"
    assert root["identifier"] == f"https://doi.org/{version.doi}"
    assert root["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert {part["@id"] for part in root["hasPart"]} == set(files)
    for path, blob in files.items():
        assert graph[path]["sha256"] == blob.sha256 and graph[path]["contentSize"] == str(blob.size)
    assert "SoftwareSourceCode" in graph[version.notebook_path]["@type"]
    jane = graph[f"https://orcid.org/{ORCID}"]
    assert root["author"][0] == {"@id": jane["@id"]} and jane["@type"] == "Person"
    assert graph[jane["affiliation"]["@id"]]["name"] == "University of Example"
    assert graph["#creator-2"]["name"] == "Roe, Richard"
    data = graph[REFERENCE["identifier"]]
    assert {"@id": data["@id"]} in root["mentions"] and data["sha256"] == "c" * 64
    assert data["localPath"] == "input/lengths.csv"
    assert {"@id": "https://doi.org/10.1234/paper.5678"} in root["citation"]


def test_download_all_is_one_ro_crate_zip_of_the_version(client, published):
    html = landing(client, published).content.decode()
    assert f'href="{url("version_crate", published)}" id="download-all"' in html
    check_crate(download_all(client, published), published)


def test_download_all_streams_from_s3(client, user, admin, s3_blob_storage):
    version = published_version(user, admin, title="Thermal expansion of copper", creators=CREATORS,
                                related_identifiers=RELATED, data_references=[REFERENCE])
    check_crate(download_all(client, version), version)


def test_a_withdrawn_version_has_no_download_all(client, published, admin):
    version_withdraw(version=published, actor=admin, reason="Wrong data.")
    assert client.get(url("version_crate", published)).status_code == 404


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_download_all_of_a_large_version_keeps_memory_flat(client, published, local_blob_storage, tmp_path):
    # A 300 MB file in local storage (sparse, so the test writes nothing), added to the published version.
    size = 300 * 1024**2
    blob = Blob.objects.create(sha256="d" * 64, md5="e" * 32, size=size, storage_key="blobs/large/" + "d" * 64)
    path = local_blob_storage / blob.storage_key
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    VersionFile.objects.create(version=published, path="data/large.bin", blob=blob)

    response = client.get(url("version_crate", published))
    assert response.streaming
    baseline, peak, received = resident_bytes(), 0, 0
    out = tmp_path / "download.zip"
    with open(out, "wb") as handle:  # to disk, as a browser saves it: the test itself holds no copy either
        for chunk in response.streaming_content:
            assert len(chunk) <= 2 * 1024**2  # read and sent a piece at a time
            handle.write(chunk)
            received += len(chunk)
            peak = max(peak, resident_bytes() - baseline)
    assert received == int(response["Content-Length"]) > size
    assert peak < 40 * 1024**2, f"the process grew by {peak / 1024**2:.0f} MB while streaming {size >> 20} MB"
    with zipfile.ZipFile(out) as archive:
        assert archive.getinfo("data/large.bin").file_size == size
        assert archive.testzip() is None


def test_the_api_links_to_the_zip_and_the_badge(client, published):
    links = client.get(reverse("api:record", kwargs={"record_id": published.record.public_id})).json()["links"]
    assert links["archive"] == "http://testserver" + url("version_crate", published)
    assert links["badge"] == "http://testserver" + url("version_badge", published)
    assert client.get(links["badge"]).status_code == 200
