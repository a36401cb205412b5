"""Resumption tokens: stateless, signed, and positioned by value (keyset), never by offset.

A token carries the whole list request (verb, metadataPrefix, set, from, until), the position after which the
next page starts — the (public_changed_at, id) of the last item sent, with microseconds — and the two counters
shown to the harvester: `cursor` (items sent before the next page) and the `completeListSize` estimated when the
list was first requested. It is signed with SECRET_KEY (django.core.signing, with its own salt) and expires after
settings.OAI_TOKEN_MAX_AGE seconds; a changed, truncated, expired or foreign token is a badResumptionToken.
Nothing is stored on the server, so any web worker can answer any page and a token outlives a restart.
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from harvest.provider.protocol import OAIError

SALT = "harvest.provider.resumption-token"
FORMAT = 1  # bump when the payload changes: older tokens are then refused rather than misread


@dataclass(frozen=True)
class ResumptionToken:
    verb: str
    metadata_prefix: str
    set_spec: str | None
    from_: str | None
    until: str | None
    after_datestamp: datetime.datetime
    after_id: int
    cursor: int
    complete_list_size: int


def token_encode(token: ResumptionToken) -> str:
    payload = [FORMAT, token.verb, token.metadata_prefix, token.set_spec, token.from_, token.until,
               token.after_datestamp.astimezone(datetime.UTC).isoformat(), token.after_id, token.cursor,
               token.complete_list_size]
    return signing.dumps(payload, salt=SALT, compress=True)


def token_decode(value: str, *, verb: str) -> ResumptionToken:
    """The token a harvester sent back; raises OAIError(badResumptionToken)."""
    try:
        payload = signing.loads(value, salt=SALT, max_age=settings.OAI_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise OAIError("badResumptionToken", "The resumptionToken has expired; start the list again.") from None
    except (signing.BadSignature, ValueError):
        raise OAIError("badResumptionToken", "The resumptionToken is not one this repository issued.") from None
    if not isinstance(payload, list) or len(payload) != 10 or payload[0] != FORMAT:
        raise OAIError("badResumptionToken", "The resumptionToken is from an older version; start the list again.")
    _, token_verb, prefix, set_spec, from_, until, after, after_id, cursor, size = payload
    if token_verb != verb:
        raise OAIError("badResumptionToken", f"The resumptionToken continues {token_verb}, not {verb}.")
    return ResumptionToken(token_verb, prefix, set_spec, from_, until, datetime.datetime.fromisoformat(after),
                           after_id, cursor, size)


def expiration_date() -> datetime.datetime:
    """When a token issued now stops being accepted."""
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=settings.OAI_TOKEN_MAX_AGE)
