"""The `access` part of a version's metadata: who may read its files (open, embargoed until a day, restricted).

Drafts set it freely (`access_clean`, called by `services.drafts.metadata_write`); after publication it can only
become more open (`access_change_refusals`, called by `services.published.version_correct_metadata`), because
readers, harvesters and DataCite may already have been told the files are open, and closing them again would
break that promise without taking anything back. The lifts (early, by an owner or admin, or by the daily job
once the day has come) are in `services.embargoes`.

Rules, with the field each error is reported on:
- `access.files`: open, embargoed or restricted.
- `access.embargo_until`: a day (YYYY-MM-DD), required for an embargo and refused otherwise; after today and at
  most MAX_EMBARGO_YEARS ahead. The day is only checked when it changes, so a version whose embargo ended today
  (and which the lift job has not reached yet) can still be saved unchanged.
- `access.embargo_reason`: why the files are closed (shown to readers); refused on open files.

An `access` left out of the metadata keeps the version's access: a client that does not know the field must not
open files by omission (everything else a PUT leaves out is cleared).
"""

from __future__ import annotations

import datetime
import re
from typing import Protocol

from repository.access.policy import today
from repository.models import FileAccess, Version

# Ten years covers journal embargoes and patent filings with room to spare. Files that must stay closed longer
# (personal data, licensed data) are what "restricted" is for: readers may ask, and owners decide.
MAX_EMBARGO_YEARS = 10
MAX_REASON_CHARS = 2000
ISO_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
ACCESS_KEYS = ("files", "embargo_until", "embargo_reason")
# From closed to open: after publication a version's access may only move right.
OPENNESS = {FileAccess.RESTRICTED: 0, FileAccess.EMBARGOED: 1, FileAccess.OPEN: 2}


class FieldErrors(Protocol):
    def add(self, field: str, message: str) -> None: ...


def latest_embargo_day(on: datetime.date) -> datetime.date:
    try:
        return on.replace(year=on.year + MAX_EMBARGO_YEARS)
    except ValueError:  # 29 February
        return on.replace(year=on.year + MAX_EMBARGO_YEARS, day=28)


def access_clean(value, *, version: Version, errors: FieldErrors, on: datetime.date | None = None) -> None:
    """Validate `value` (the metadata's `access` object) and set it on `version` (unsaved). Errors go to
    `errors` under `access.<key>`; the version's access is then left as it was."""
    problems = access_problems(value, version=version, on=on or today())
    for field, message in problems:
        errors.add(field, message)
    if not problems:
        version.access_files = value["files"]
        version.embargo_until = _day(value.get("embargo_until"))
        version.embargo_reason = (value.get("embargo_reason") or "").strip()


def access_problems(value, *, version: Version, on: datetime.date) -> list[tuple[str, str]]:
    """What is wrong with `value` as the `access` of `version`, as (field, message) pairs."""
    if not isinstance(value, dict):
        return [("access", 'Expected an object such as {"files": "open"}.')]
    problems = [(f"access.{key}", f"Unknown field; the fields are {', '.join(ACCESS_KEYS)}.")
                for key in sorted(str(key) for key in value if key not in ACCESS_KEYS)]
    files = value.get("files")
    if files not in FileAccess.values:
        return [*problems, ("access.files", f"Choose one of {', '.join(FileAccess.values)}.")]
    try:
        until = _day(value.get("embargo_until"))
    except ValueError:
        problems.append(("access.embargo_until", "Enter a day as YYYY-MM-DD."))
        until = None
    reason = value.get("embargo_reason") or ""
    if not isinstance(reason, str):
        return [*problems, ("access.embargo_reason", "Expected text.")]
    if files == FileAccess.EMBARGOED:
        problems += _embargo_day_problems(until, version=version, on=on, malformed=bool(problems))
    elif until is not None:
        problems.append(("access.embargo_until", "Only an embargo has an end date; leave it empty (null)."))
    if files == FileAccess.OPEN and reason.strip():
        problems.append(("access.embargo_reason", "Open files need no reason; leave it empty."))
    if len(reason.strip()) > MAX_REASON_CHARS:
        problems.append(("access.embargo_reason", f"At most {MAX_REASON_CHARS} characters."))
    return problems


def _embargo_day_problems(until: datetime.date | None, *, version: Version, on: datetime.date,
                          malformed: bool) -> list[tuple[str, str]]:
    if until is None:
        return [] if malformed else [("access.embargo_until",
                                      "An embargo needs the day its files open (YYYY-MM-DD).")]
    if (version.access_files, version.embargo_until) == (FileAccess.EMBARGOED, until):
        return []  # unchanged: saved again as it is, even on (or after) its last day
    if until <= on:
        return [("access.embargo_until", f"The day the files open must be after today ({on.isoformat()}); "
                 "choose open access to open them now.")]
    if until > latest_embargo_day(on):
        return [("access.embargo_until", f"An embargo lasts at most {MAX_EMBARGO_YEARS} years (until "
                 f"{latest_embargo_day(on).isoformat()}); for files that stay closed longer, choose restricted "
                 "access: readers may then ask for them.")]
    return []


def _day(value) -> datetime.date | None:
    """None, a date, or YYYY-MM-DD; ValueError otherwise."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and ISO_DAY_RE.match(value.strip()):
        return datetime.date.fromisoformat(value.strip())
    raise ValueError(value)


def access_in_words(access: dict) -> str:
    """An access (as `selectors.version_access` shows it) in a few words, for moderators' diffs and timelines."""
    words = {FileAccess.OPEN: "open", FileAccess.RESTRICTED: "restricted"}.get(
        access.get("files"), f"embargoed until {access.get('embargo_until')}")
    return f"{words} ({access['embargo_reason']})" if access.get("embargo_reason") else words


def access_change_refusals(before: dict, after: dict) -> dict[str, list[str]]:
    """Field errors for a published version's access changing from `before` to `after` (both as
    `selectors.version_access` shows them); empty when the change may be made. Access may only become more open
    (restricted, then embargoed, then open), and an embargo may only end earlier."""
    if OPENNESS[after["files"]] < OPENNESS[before["files"]]:
        return {"access.files": [
            f"A published version's files can only become more open (restricted, then embargoed, then open); they "
            f"are {before['files']} and cannot become {after['files']}. Start a new version to publish them "
            "differently."]}
    if before["files"] == after["files"] == FileAccess.EMBARGOED and after["embargo_until"] > before["embargo_until"]:
        return {"access.embargo_until": [
            f"A published embargo can only end earlier: it ends on {before['embargo_until']}, not later."]}
    return {}
