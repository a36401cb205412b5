"""Validators for what submitters type: identifiers, licences, container images and file paths.

Each raises django.core.exceptions.ValidationError with a message that says how to fix the value. They are
attached to model fields, so forms, serializers and services all reject the same things with the same words.
"""

import re
import unicodedata
from functools import lru_cache

from django.core.exceptions import ValidationError

ORCID_RE = re.compile(r"^(\d{4})-(\d{4})-(\d{4})-(\d{3}[\dX])$")
ROR_RE = re.compile(r"^0[a-hj-km-np-tv-z0-9]{6}\d{2}$")
DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# registry/name[:tag]@sha256:<64 hex>; the registry part is optional (docker.io is implied then).
IMAGE_RE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"@sha256:(?P<digest>[0-9a-f]{64})$"
)
MAX_PATH_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255


def orcid_checksum_ok(digits: str) -> bool:
    """ISO 7064 MOD 11-2 over the first 15 digits; the 16th is the check character (0-9 or X)."""
    total = 0
    for char in digits[:-1]:
        total = (total + int(char)) * 2
    remainder = total % 11
    check = (12 - remainder) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


def normalize_orcid(value: str) -> str:
    """Accept a bare ORCID iD or its https://orcid.org/ URL; return the bare form."""
    value = value.strip()
    for prefix in ("https://orcid.org/", "http://orcid.org/", "orcid.org/"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
    return value.upper()


def validate_orcid(value: str) -> None:
    bare = normalize_orcid(value)
    if not ORCID_RE.match(bare):
        raise ValidationError(
            "Enter an ORCID iD as 0000-0002-1825-0097 or https://orcid.org/0000-0002-1825-0097.", code="orcid_format"
        )
    if not orcid_checksum_ok(bare.replace("-", "")):
        raise ValidationError(
            "This ORCID iD has a wrong check digit (ISO 7064 MOD 11-2); check it for a typo.", code="orcid_checksum"
        )


def normalize_ror(value: str) -> str:
    value = value.strip()
    for prefix in ("https://ror.org/", "http://ror.org/", "ror.org/"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
    return value.lower()


def ror_checksum_ok(ror_id: str) -> bool:
    """The last two digits of a ROR id are an ISO 7064 MOD 97-10 checksum of the Crockford base32 body."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    number = 0
    for char in ror_id[1:7]:
        number = number * 32 + alphabet.index(char)
    return 98 - (number * 100 % 97) == int(ror_id[7:])


def validate_ror(value: str) -> None:
    bare = normalize_ror(value)
    if not ROR_RE.match(bare) or not ror_checksum_ok(bare):
        raise ValidationError("Enter a ROR id such as https://ror.org/02mhbdp94.", code="ror")


def normalize_doi(value: str) -> str:
    value = value.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/", "doi:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
    return value


def validate_doi(value: str) -> None:
    if not DOI_RE.match(normalize_doi(value)):
        raise ValidationError("Enter a DOI such as 10.5281/zenodo.1234 (with or without https://doi.org/).", code="doi")


def validate_sha256(value: str) -> None:
    if not SHA256_RE.match(value):
        raise ValidationError("Enter the SHA-256 as 64 lower-case hexadecimal characters.", code="sha256")


@lru_cache(maxsize=1)
def _spdx_licensing():
    # license-expression ships the SPDX license list; loading it takes a moment, so do it once.
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def normalize_spdx(value: str) -> str:
    """Return the SPDX id in its canonical spelling (apache-2.0 -> Apache-2.0), or the input if unknown."""
    info = _spdx_licensing().validate(value.strip())
    if info.errors or info.invalid_symbols or not info.normalized_expression:
        return value.strip()
    return info.normalized_expression


def validate_spdx_license(value: str) -> None:
    value = value.strip()
    if not re.match(r"^[A-Za-z0-9.+-]+$", value):
        raise ValidationError(
            "Enter one SPDX license identifier such as CC-BY-4.0 or Apache-2.0 (not an expression).", code="license"
        )
    info = _spdx_licensing().validate(value)
    if info.errors or info.invalid_symbols:
        raise ValidationError(
            f"'{value}' is not an SPDX license identifier; see https://spdx.org/licenses/ (e.g. CC-BY-4.0, MIT).",
            code="license",
        )


def validate_container_image(value: str) -> None:
    value = value.strip()
    if IMAGE_RE.match(value):
        return
    if "@sha256:" not in value:
        raise ValidationError(
            "Pin the image by digest, e.g. registry.example.org/group/image@sha256:<64 hex>. A tag alone can be "
            "moved; find the digest with `docker inspect --format '{{index .RepoDigests 0}}' IMAGE` or "
            "`skopeo inspect docker://IMAGE`.",
            code="image_not_pinned",
        )
    raise ValidationError(
        "Enter the image as registry/name@sha256:<64 lower-case hex characters>.", code="image_format"
    )


def validate_file_path(value: str) -> None:
    """A relative POSIX path inside the version: no '..', no absolute path, no control characters."""
    if not value:
        raise ValidationError("The file path is empty.", code="path_empty")
    if len(value) > MAX_PATH_LENGTH:
        raise ValidationError(f"The file path is longer than {MAX_PATH_LENGTH} characters.", code="path_length")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in value):
        raise ValidationError("The file path contains control or invisible characters.", code="path_control")
    if "\\" in value:
        raise ValidationError("Use '/' to separate folders in the file path, not '\\'.", code="path_backslash")
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise ValidationError("The file path must be relative (no leading '/').", code="path_absolute")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValidationError(
                "The file path may not contain empty, '.' or '..' parts.", code="path_traversal"
            )
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise ValidationError(
                f"A folder or file name is longer than {MAX_SEGMENT_LENGTH} characters.", code="path_length"
            )
        if segment != segment.strip():
            raise ValidationError("File and folder names may not start or end with spaces.", code="path_space")


def normalize_file_path(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def validate_public_https_url(value: str) -> None:
    """An https URL staging could fetch: refused now, in staging's words, when its host is an address staging
    refuses in any spelling (http://[::1]/, [::ffff:127.0.0.1], 0:0:0:0:0:0:0:1, 6to4, NAT64) or localhost.
    Names are resolved only by staging, which checks every address they resolve to."""
    from urllib.parse import urlsplit

    from django.core.validators import URLValidator

    # Imported here: the models import this module, and staging imports the models.
    from repository.runners.staging.addresses import host_refusal
    from repository.runners.staging.specs import policy_from_settings

    try:
        URLValidator(schemes=["https"])(value)
    except ValidationError:
        raise ValidationError("Enter a full https:// URL (plain http is not accepted).", code="url") from None
    problem = host_refusal(urlsplit(value).hostname or "", policy_from_settings().parsed_networks)
    if problem:
        raise ValidationError(problem, code="url_not_public")


# --- Look-alike file names -----------------------------------------------------------------------------------
# Two files of one version whose names differ only by characters that look the same ("data.csv" with a Latin
# "a" and "dаta.csv" with a Cyrillic one) let an author show readers one file and have the notebook read the other.
# They are compared by their skeletons in the sense of Unicode TS #39 (section 4): each character replaced by the
# prototype of its confusables class, so that look-alikes of any script, fullwidth and mathematical forms meet.
# The classes come from confusable_homoglyphs, a maintained package shipping Unicode's confusables.txt as data
# (rather than a copy of that table kept here); it maps each character to its prototype and each prototype to
# its look-alikes, so a character's class is what is at most two steps from it. Mappings to several characters
# ("rn" for "m") are left out: a skeleton of single characters keeps the comparison position by position.


@lru_cache(maxsize=1)
def _confusables() -> dict:
    from confusable_homoglyphs.confusables import confusables_data  # about 1 MB of JSON: loaded on first use

    return confusables_data


@lru_cache(maxsize=4096)
def _prototype(char: str) -> str:
    data = _confusables()
    near = [entry["c"] for entry in data.get(char, ()) if len(entry["c"]) == 1]
    members = {char, *near, *(entry["c"] for other in near for entry in data.get(other, ()) if len(entry["c"]) == 1)}
    return min(members)  # any fixed choice in the class will do; the smallest is stable


def lookalike_skeleton(value: str) -> str:
    """The string as it looks: equal skeletons mean names a reader cannot tell apart (letter case aside)."""
    # NFKC first: compatibility forms (fullwidth "ｄ", ligatures) look like their plain letters but are not all in
    # confusables.txt.
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", value))
    return unicodedata.normalize("NFD", "".join(_prototype(char) for char in decomposed)).casefold()


def lookalike_difference(value: str, other: str) -> str:
    """'X' (NAME, U+XXXX) where `other` has 'Y': the first character telling two look-alike names apart."""
    for mine, theirs in zip(value, other, strict=False):
        if mine.casefold() != theirs.casefold():  # letter case is told apart by the path check before this one
            name = unicodedata.name(mine, "unnamed character")
            return f"'{mine}' ({name}, U+{ord(mine):04X}) where that has '{theirs}'"
    return "characters that look the same"
