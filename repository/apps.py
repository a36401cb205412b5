from django.apps import AppConfig


class RepositoryConfig(AppConfig):
    name = "repository"
    verbose_name = "Repository"

    def ready(self) -> None:
        from repository import checks  # noqa: F401  (registers the system checks)
        from repository.observability import logs  # noqa: F401  (the request id's Celery signal handlers)
