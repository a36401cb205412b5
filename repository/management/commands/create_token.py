"""python manage.py create_token USER [--name NAME]: print a new personal access token for USER."""

from django.core.management.base import BaseCommand, CommandError

from repository.errors import NbarchiveError
from repository.services.tokens import token_create, user_get_by_username


class Command(BaseCommand):
    help = "Create a personal access token for the REST API and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="A name to recognise the token by.")

    def handle(self, *args, username, name, **options):
        try:
            user = user_get_by_username(username)
            _, raw = token_create(user=user, name=name)
        except NbarchiveError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(raw)
