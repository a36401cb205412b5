"""What a draft still lacks before it can be submitted for review (shown on the draft page and in the API)."""

from repository.models import Version


def draft_missing_for_submission(version: Version) -> list[str]:
    missing = []
    if not version.title:
        missing.append("a title")
    if not version.description:
        missing.append("a description")
    if not version.creators.all():
        missing.append("at least one creator")
    if not version.license:
        missing.append("a license")
    if not version.container_image:
        missing.append("a container image pinned by digest")
    if not version.notebook_path:
        missing.append("a notebook (.ipynb) file")
    return missing
