"""Personal access tokens: created on a web page or with `manage.py create_token`, shown once, stored hashed."""

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from repository.errors import InvalidInput, NotFound
from repository.models import AccessToken
from repository.services.audit import audit_event_append

TOKEN_PREFIX = "nba_"


def _hash(raw_token: str) -> str:
    # The token carries 256 random bits, so a fast hash is enough: no dictionary to guard against.
    return hashlib.sha256(raw_token.encode()).hexdigest()


@transaction.atomic
def token_create(*, user, name: str) -> tuple[AccessToken, str]:
    """Create a token for `user`; return the row and the token itself, which is not stored anywhere."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("Give the token a name of 1 to 100 characters.", field_errors={"name": ["Required."]})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AccessToken.objects.create(user=user, name=name, token_hash=_hash(raw), prefix=raw[:12])
    audit_event_append(actor=user, action="token.create", data={"token": token.pk, "name": name})
    return token, raw


@transaction.atomic
def token_revoke(*, user, token_id: int) -> None:
    updated = AccessToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if not updated:
        raise NotFound("No such active token.")
    audit_event_append(actor=user, action="token.revoke", data={"token": token_id})


def token_authenticate(raw_token: str):
    """Return the active user a token belongs to, or None."""
    token = (
        AccessToken.objects.select_related("user")
        .filter(token_hash=_hash(raw_token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # Write at most once a minute: a busy API client should not turn every read into a write.
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        AccessToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user


def user_get_by_username(username: str):
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise NotFound(f"No user '{username}'.") from None
