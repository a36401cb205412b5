"""The validators behind every form and API field: what they accept and what they refuse, and why."""

import pytest
from django.core.exceptions import ValidationError

from repository import validators

DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize("orcid", ["0000-0002-1825-0097", "https://orcid.org/0000-0002-1694-233X",
                                   "0000-0001-5109-3700", "0000-0002-1694-233x"])
def test_valid_orcids(orcid):
    validators.validate_orcid(orcid)


@pytest.mark.parametrize("orcid, code", [
    ("0000-0002-1825-0098", "orcid_checksum"),
    ("0000-0002-1825-009", "orcid_format"),
    ("0000000218250097", "orcid_format"),
    ("https://example.org/0000-0002-1825-0097", "orcid_format"),
])
def test_invalid_orcids(orcid, code):
    with pytest.raises(ValidationError) as raised:
        validators.validate_orcid(orcid)
    assert raised.value.code == code


@pytest.mark.parametrize("ror", ["https://ror.org/05a28rw58", "02mhbdp94", "ror.org/03yrm5c26"])
def test_valid_ror_ids(ror):
    validators.validate_ror(ror)


@pytest.mark.parametrize("ror", ["05a28rw59", "https://ror.org/12345678", "0abcdefgh", ""])
def test_invalid_ror_ids(ror):
    with pytest.raises(ValidationError):
        validators.validate_ror(ror)


@pytest.mark.parametrize("image", [
    f"registry.example.org/group/image@sha256:{DIGEST}",
    f"registry.example.org:5000/group/sub/image:1.2@sha256:{DIGEST}",
    f"python@sha256:{DIGEST}",
    f"ghcr.io/org/image:latest@sha256:{DIGEST}",
])
def test_pinned_images_are_accepted(image):
    validators.validate_container_image(image)


@pytest.mark.parametrize("image, code", [
    ("python:3.11", "image_not_pinned"),
    ("registry.example.org/group/image:latest", "image_not_pinned"),
    ("registry.example.org/group/image@sha256:abc", "image_format"),
    (f"Registry.Example.org/Group/Image@sha256:{DIGEST}", "image_format"),
    (f"registry.example.org/image@sha256:{DIGEST.upper()}", "image_format"),
    (f"registry.example.org/image@sha256:{DIGEST}\nscript: rm -rf /", "image_format"),
    (f"registry.example.org/image@sha512:{DIGEST}{DIGEST}", "image_not_pinned"),
])
def test_unpinned_or_malformed_images_are_refused(image, code):
    with pytest.raises(ValidationError) as raised:
        validators.validate_container_image(image)
    assert raised.value.code == code


def test_the_unpinned_message_says_how_to_pin():
    with pytest.raises(ValidationError) as raised:
        validators.validate_container_image("jupyter/scipy-notebook:2024-01-01")
    assert "@sha256:" in raised.value.messages[0] and "docker inspect" in raised.value.messages[0]


@pytest.mark.parametrize("license_id", ["CC-BY-4.0", "MIT", "Apache-2.0", "cc0-1.0", "GPL-3.0-or-later"])
def test_spdx_ids_are_accepted_and_normalised(license_id):
    validators.validate_spdx_license(license_id)
    assert validators.normalize_spdx(license_id.lower()).lower() == license_id.lower()


def test_spdx_spelling_is_normalised():
    assert validators.normalize_spdx("apache-2.0") == "Apache-2.0"


@pytest.mark.parametrize("license_id", ["Not-A-License", "MIT OR Apache-2.0", "CC BY 4.0", ""])
def test_non_spdx_licenses_are_refused(license_id):
    with pytest.raises(ValidationError):
        validators.validate_spdx_license(license_id)


@pytest.mark.parametrize("path", ["a.txt", "data/in/table.csv", "notebooks/Analyse – Ω.ipynb", ".hidden", "a..b"])
def test_good_paths(path):
    validators.validate_file_path(path)


@pytest.mark.parametrize("path, code", [
    ("", "path_empty"),
    ("/etc/passwd", "path_absolute"),
    ("C:/x.txt", "path_absolute"),
    ("../x", "path_traversal"),
    ("a/../../x", "path_traversal"),
    ("a/./b", "path_traversal"),
    ("a//b", "path_traversal"),
    ("a/", "path_traversal"),
    ("a\\b", "path_backslash"),
    ("a\x00b", "path_control"),
    ("a\nb", "path_control"),
    ("a\u202eb", "path_control"),
    ("x" * 256, "path_length"),
    ("a/" * 600 + "b", "path_length"),
    (" a.txt", "path_space"),
])
def test_bad_paths(path, code):
    with pytest.raises(ValidationError) as raised:
        validators.validate_file_path(path)
    assert raised.value.code == code


@pytest.mark.parametrize("doi", ["10.5281/zenodo.1234", "https://doi.org/10.1000/xyz(1)", "doi:10.1234/ABC.def"])
def test_valid_dois(doi):
    validators.validate_doi(doi)


@pytest.mark.parametrize("doi", ["10.12/x", "zenodo.1234", "10.5281/", "https://example.org/10.5281/x"])
def test_invalid_dois(doi):
    with pytest.raises(ValidationError):
        validators.validate_doi(doi)
