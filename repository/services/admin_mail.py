"""Telling the people who run the archive: ADMINS when configured, else the active superusers with an address."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import mail_admins, send_mail


def admins_tell(subject: str, body: str) -> bool:
    """E-mail `subject` and `body` to the admins; False when there is nobody to tell (no ADMINS, no superuser with
    an e-mail address). A mail server's errors reach the caller, who decides whether they may stop it."""
    if settings.ADMINS:
        mail_admins(subject, body)
        return True
    recipients = list(get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
                      .values_list("email", flat=True))
    if not recipients:
        return False
    send_mail(f"{settings.EMAIL_SUBJECT_PREFIX}{subject}", body, None, recipients)
    return True
