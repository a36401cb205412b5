"""What every export says of a version's file access, and whether it may link the files.

Metadata is public in every access state; the files are not. So each export (DataCite, Dublin Core / OAI-PMH,
schema.org JSON-LD, Signposting, the landing page's citation meta) states the access right in its own vocabulary
and links or describes the files for download only when `files_linkable` says so. The state is the one readers
get today (`repository.access.policy.effective_access`): an embargo whose day has come reads as open, even before
the lift job has recorded it.

- `rights_uri`: the info:eu-repo access term OpenAIRE harvesters read in DataCite's `rightsURI` and in
  Dublin Core's `dc:rights` (`COAR_RIGHTS_URI` of the policy module);
- `label`: the term's label as DataCite and Zenodo write it ("Open Access", ...);
- `embargo_end`: the day the files open, while an embargo runs (Dublin Core's `info:eu-repo/date/embargoEnd/`);
- `available_from`: the day the files opened or will open after an embargo (DataCite's `Available` date), kept
  once an embargo has been lifted, since it stays true;
- `conditions`: one sentence for people (schema.org's `conditionsOfAccess`).
"""

import datetime
from dataclasses import dataclass

from repository.access.policy import COAR_RIGHTS_URI, effective_access, files_are_open, today
from repository.models import FileAccess, Version

RIGHTS_LABELS = {FileAccess.OPEN: "Open Access", FileAccess.EMBARGOED: "Embargoed Access",
                 FileAccess.RESTRICTED: "Restricted Access"}

# The states whose files the public routes may serve (drafts and versions in review have no public files, a
# withdrawn version's files are no longer served).
_SERVED_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)


@dataclass(frozen=True)
class AccessStatement:
    state: str  # a FileAccess value, as readers get it today
    rights_uri: str
    label: str
    conditions: str
    embargo_end: datetime.date | None
    available_from: datetime.date | None

    @property
    def is_open(self) -> bool:
        return self.state == FileAccess.OPEN


def access_statement(version: Version) -> AccessStatement:
    day = today()
    state = effective_access(version, on=day)
    embargo_end = version.embargo_until if state == FileAccess.EMBARGOED else None
    lifted = (version.access_files in (FileAccess.EMBARGOED, FileAccess.OPEN) and version.embargo_until
              and version.embargo_until <= day)
    return AccessStatement(
        state=state, rights_uri=COAR_RIGHTS_URI[state], label=RIGHTS_LABELS[state],
        conditions=_conditions(state, embargo_end), embargo_end=embargo_end,
        available_from=embargo_end or (version.embargo_until if lifted else None),
    )


def files_linkable(version: Version) -> bool:
    """Whether an export may link the version's files for download (or describe them as downloadable): only an
    accepted, not withdrawn version whose files everyone may read today."""
    return version.state in _SERVED_STATES and files_are_open(version)


def _conditions(state: str, embargo_end: datetime.date | None) -> str:
    if state == FileAccess.EMBARGOED:
        return (f"Embargoed access: the metadata are public; the files are closed until "
                f"{embargo_end.isoformat()}, when they open to everyone.")
    if state == FileAccess.RESTRICTED:
        return ("Restricted access: the metadata are public; the files are available only to people the owners "
                "grant access, on request.")
    return "Open access: the files are free for anyone to download."
