"""Image references pinned by digest: `registry/name@sha256:<64 hex>`, nothing else.

A tag can be moved after the fact and an implicit registry depends on the worker's configuration, so both are
refused: the reference alone must say exactly which bytes run. The grammar is the one of the distribution spec
(github.com/distribution/reference), restricted to sha256 digests.
"""

import re
from dataclasses import dataclass

from repository.errors import InvalidImageReference

_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class ImageReference:
    registry: str    # host[:port], e.g. docker.io or 127.0.0.1:5000
    repository: str  # path inside the registry, e.g. jupyter/scipy-notebook
    digest: str      # sha256:<64 hex>, the manifest (or image index) digest

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    def with_digest(self, digest: str) -> "ImageReference":
        return ImageReference(self.registry, self.repository, digest)


def parse_reference(text: str) -> ImageReference:
    """Parse and validate a pinned reference; raises InvalidImageReference saying what is wrong."""
    text = (text or "").strip()
    name, at, digest = text.partition("@")
    if not at:
        raise InvalidImageReference(
            f"'{text}' is not pinned by digest: name the image as registry/name@sha256:<64 hex digits> "
            "(a tag can be moved to other bytes after the run).")
    if not _DIGEST.fullmatch(digest):
        raise InvalidImageReference(f"'{digest}' is not a sha256 digest (sha256: and 64 lowercase hex digits).")
    registry, slash, repository = name.partition("/")
    if not slash or not _looks_like_registry(registry):
        raise InvalidImageReference(
            f"'{name}' does not name its registry: write it in full, e.g. docker.io/{name} or quay.io/{name}.")
    if not _REGISTRY.fullmatch(registry):
        raise InvalidImageReference(f"'{registry}' is not a registry host[:port].")
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        raise InvalidImageReference(
            f"'{text}' has a tag ({last.split(':', 1)[1]}) as well as a digest: drop the tag, the digest alone "
            "names the image.")
    if not all(_PATH_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise InvalidImageReference(
            f"'{repository}' is not a repository name (lowercase letters, digits and . _ - separators).")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidImageReference(f"The image name is longer than {MAX_NAME_LENGTH} characters.")
    return ImageReference(registry=registry.lower(), repository=repository, digest=digest)


def _looks_like_registry(component: str) -> bool:
    # The distribution spec's rule: a first component with a dot or a port, or localhost, is a registry.
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")
