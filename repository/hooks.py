"""Extension points the core offers to the apps built on it.

The dependencies point one way: moderation and harvest import the core, the core imports neither. Where the
core needs something only they know, it asks here, and each app fills its hooks in `AppConfig.ready()`:

| hook | filled by | the core asks it |
|---|---|---|
| `submit_for_review(version=, actor=, community=)` | moderation | to submit a draft (draft page, API) |
| `moderates_version(user, version)` | moderation | who moderates a submitted version (permissions.py) |
| `review_of(version)` | moderation | the review request a draft page shows |
| `moderators_of(version)` | moderation | whom to tell, besides the global moderators (community moderators) |
| `corrections_reviewed(version, actor)` | moderation | whether `actor`'s correction must wait for review |
| `hold_correction(version=, actor=, metadata=, fields=, reason=)` | moderation | to keep it for the moderators |
| `external_metadata_for_dois(dois)` | harvest | what harvested records say of DOIs (data references) |
| `communities_of(version_pks)` | moderation | the community each accepted version was published in (search) |
| `community_names(slugs)` | moderation | the names of communities, for search facets |
| `communities_listed()` | moderation | the communities the home page lists: dicts of slug, name, url |

Events are the other direction: the core tells whoever listens (`listen(version_published=...)`), e.g. the
GitLab app mirrors a version when it is published. Listeners run inside the caller's transaction; side effects
go to `transaction.on_commit`, as everywhere.

| event | sent by | listeners |
|---|---|---|
| `version_published(version)` | services/versions.py `version_publish` | GitLab mirror, search index, OAI payloads |
| `version_corrected(version, actor, fields, reason)` | services/published.py | moderation (e-mail), search, OAI |
| `version_withdrawn(version)` | services/published.py `version_withdraw` | the search index, OAI payloads |
| `version_access_changed(version, actor, before, after)` | services/embargoes.py, services/published.py | search, OAI |

`version_access_changed` is sent whenever a published version's files open: by an embargo's lift (early, or by
the daily job; actor None) and by a correction (after its `version_corrected`), so that whoever serves or mirrors
the files (the GitLab mirror, which pushes no files while they are closed) hears of it in one place.

An unfilled hook answers as the core alone would: nobody but the global moderators moderates, nothing is
harvested, and submitting is refused with a message (there is no review without moderation). Call a hook
through the module (`hooks.review_of(version)`), never `from repository.hooks import review_of`: the names are
replaced at start-up, and an imported name would keep the default.
"""

from collections.abc import Callable, Iterable
from typing import Any

from repository.errors import Conflict


def _submit_unavailable(*, version, actor, community: str | None = None):
    raise Conflict("Submitting for review needs the moderation app, which is not installed.")


def _nobody_else(user, version) -> bool:
    return False


def _no_review(version):
    return None


def _no_one(version) -> list:
    return []


def _hold_unavailable(*, version, actor, metadata, fields, reason):
    raise Conflict("Holding a correction for review needs the moderation app, which is not installed.")


def _no_communities(version_pks: Iterable[int]) -> dict[int, str]:
    return {}


def _no_names(slugs: Iterable[str]) -> dict[str, str]:
    return {}


def _no_list() -> list:
    return []


def _nothing_harvested(dois: Iterable[str]) -> dict[str, Any]:
    return {}


submit_for_review: Callable[..., Any] = _submit_unavailable
moderates_version: Callable[[Any, Any], bool] = _nobody_else
review_of: Callable[[Any], Any] = _no_review
moderators_of: Callable[[Any], list] = _no_one
corrections_reviewed: Callable[[Any, Any], bool] = _nobody_else
hold_correction: Callable[..., Any] = _hold_unavailable
external_metadata_for_dois: Callable[[Iterable[str]], dict[str, Any]] = _nothing_harvested
communities_of: Callable[[Iterable[int]], dict[int, str]] = _no_communities
community_names: Callable[[Iterable[str]], dict[str, str]] = _no_names
communities_listed: Callable[[], list] = _no_list


def register(**hooks: Callable) -> None:
    """Fill hooks by name, e.g. `register(review_of=...)`; an unknown name is a programming error."""
    for name, function in hooks.items():
        if name not in _HOOK_NAMES:
            raise AttributeError(f"repository.hooks has no hook named {name!r}")
        globals()[name] = function


_HOOK_NAMES = frozenset({"submit_for_review", "moderates_version", "review_of", "moderators_of",
                         "corrections_reviewed", "hold_correction", "external_metadata_for_dois",
                         "communities_of", "community_names", "communities_listed"})

_listeners: dict[str, list[Callable]] = {"version_published": [], "version_corrected": [], "version_withdrawn": [],
                                         "version_access_changed": []}


def listen(**listeners: Callable) -> None:
    """Add a listener to an event by name, e.g. `listen(version_published=...)`; adding one twice adds it once."""
    for event, listener in listeners.items():
        if event not in _listeners:
            raise AttributeError(f"repository.hooks has no event named {event!r}")
        if listener not in _listeners[event]:
            _listeners[event].append(listener)


def send(event: str, **arguments) -> None:
    """Call every listener of `event` with `arguments`, in the order they were added."""
    for listener in _listeners[event]:
        listener(**arguments)
