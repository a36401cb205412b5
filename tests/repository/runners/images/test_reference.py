"""Image references: pinned by digest, with their registry named, or refused with the reason."""

import pytest

from repository.errors import InvalidImageReference
from repository.runners.images import parse_reference

pytestmark = [pytest.mark.images]
DIGEST = "sha256:" + "ab" * 32


def test_a_pinned_reference_is_split_into_registry_repository_and_digest():
    ref = parse_reference(f"  Quay.io:443/jupyter/scipy-notebook@{DIGEST} ")

    assert (ref.registry, ref.repository, ref.digest) == ("quay.io:443", "jupyter/scipy-notebook", DIGEST)
    assert str(ref) == f"quay.io:443/jupyter/scipy-notebook@{DIGEST}"
    assert ref.hex == "ab" * 32


@pytest.mark.parametrize("text, says", [
    ("docker.io/jupyter/scipy-notebook:2024-01-01", "not pinned by digest"),
    (f"docker.io/jupyter/scipy-notebook:latest@{DIGEST}", "has a tag"),
    (f"jupyter/scipy-notebook@{DIGEST}", "does not name its registry"),
    (f"scipy-notebook@{DIGEST}", "does not name its registry"),
    ("docker.io/jupyter/scipy-notebook@sha256:abc", "is not a sha256 digest"),
    (f"docker.io/jupyter/scipy-notebook@{DIGEST.upper()}", "is not a sha256 digest"),
    ("docker.io/jupyter/scipy-notebook@sha512:" + "ab" * 64, "is not a sha256 digest"),
    (f"docker.io/Jupyter/Notebook@{DIGEST}", "is not a repository name"),
    (f"bad_host.example/x@{DIGEST}", "is not a registry"),
    ("", "not pinned by digest"),
])
def test_anything_but_a_digest_pin_with_a_registry_is_refused_with_the_reason(text, says):
    with pytest.raises(InvalidImageReference) as refused:
        parse_reference(text)

    assert says in refused.value.detail
    assert refused.value.code == "invalid_image_reference"


def test_localhost_and_ports_name_a_registry():
    assert parse_reference(f"localhost/x@{DIGEST}").registry == "localhost"
    assert parse_reference(f"127.0.0.1:5000/a/b/c@{DIGEST}").repository == "a/b/c"
