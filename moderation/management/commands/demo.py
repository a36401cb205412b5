"""python manage.py demo: demo users, one draft with a real notebook and its data file, and one record
published through the real review flow (accepted by the demo moderator, DOI registered by the local registrar).

Safe to run again: users get fresh passwords (printed), and the records are created only once.
"""

import hashlib
import io
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.urls import reverse

from moderation.services import review_act, review_submit
from repository import demo
from repository.models import Record, Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload

DEMO_IMAGE = "registry.example.org/nbarchive/demo-python@sha256:" + hashlib.sha256(b"nbarchive demo").hexdigest()
DEMO_METADATA = {
    "title": "Thermal expansion of a copper rod (nbarchive demo)",
    "description": "A small demo notebook that fits the linear expansion coefficient of copper from twelve "
    "length measurements.",
    "resource_type": "ComputationalNotebook",
    "license": "CC-BY-4.0",
    "keywords": ["demo", "thermal expansion", "copper"],
    "creators": [{"name": "Submitter, Demo", "given_name": "Demo", "family_name": "Submitter",
                  "orcid": "0000-0002-1825-0097", "affiliation": "nbarchive demo institute"}],
    "container_image": DEMO_IMAGE,
}


PUBLISHED_TITLE = "Thermal expansion of a copper rod (nbarchive demo, published)"


class Command(BaseCommand):
    help = "Create demo users (submitter, moderator, admin) and a draft holding a small notebook and its data."

    def handle(self, *args, **options):
        users = {name: self._user(name) for name in ("submitter", "moderator", "admin")}
        moderators, _ = Group.objects.get_or_create(name="moderators")
        users["moderator"][0].groups.add(moderators)

        submitter = users["submitter"][0]
        record = Record.objects.filter(owners=submitter, versions__state=Version.State.DRAFT).first()
        if record is None:
            record = self._demo_draft(submitter, DEMO_METADATA).record
        published = Record.objects.filter(owners=submitter, versions__state__in=Version.ACCEPTED_STATES).first()
        if published is None:
            published = self._published(submitter, users["moderator"][0])

        self.stdout.write("Demo users (passwords are new on every run):")
        for name, (_, password) in users.items():
            self.stdout.write(f"  {name:<10} {password}")
        url = settings.SITE_URL + reverse("repository:draft_detail", kwargs={"record_id": record.public_id})
        self.stdout.write(f"Demo draft: {url}")
        landing = settings.SITE_URL + reverse("repository:record_landing", kwargs={"record_id": published.public_id})
        self.stdout.write(f"Demo published record: {landing}")
        self.stdout.write(f"Open {settings.SITE_URL}/ and log in as submitter.")
        if settings.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":
            self.stdout.write(f"E-mails (review notifications) are written to {settings.EMAIL_FILE_PATH}/.")

    def _demo_draft(self, submitter, metadata: dict) -> Version:
        version = record_create(owner=submitter, metadata=metadata)
        for path, data in (("thermal_expansion.ipynb", demo.notebook()), (demo.DATA_PATH, demo.measurements_csv())):
            draft_file_upload(version=version, actor=submitter, path=path, stream=io.BytesIO(data),
                              content_length=len(data))
        return version

    def _published(self, submitter, moderator) -> Record:
        """Submitted, accepted and its DOIs synced in this process, so the landing page works without a worker."""
        version = self._demo_draft(submitter, {**DEMO_METADATA, "title": PUBLISHED_TITLE})
        review = review_submit(version=version, actor=submitter)
        review_act(request_id=review.pk, action="accept", actor=moderator, comment="Demo: accepted.")
        call_command("doi_sync", stdout=io.StringIO())
        return version.record

    def _user(self, name: str):
        user, _ = get_user_model().objects.get_or_create(username=name, defaults={"email": f"{name}@example.org"})
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.is_staff = user.is_superuser = name == "admin"
        user.save()
        return user, password
