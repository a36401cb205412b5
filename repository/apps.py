from django.apps import AppConfig


class RepositoryConfig(AppConfig):
    name = "repository"
    verbose_name = "Repository"

    def ready(self) -> None:
        from repository import (
            checks,  # noqa: F401  (registers the system checks)
            hooks,
        )
        from repository.observability import logs  # noqa: F401  (the request id's Celery signal handlers)
        from repository.search.indexing import version_listener

        # The search index follows every change of what readers see (repository/search/indexing.py).
        hooks.listen(version_published=version_listener, version_corrected=version_listener,
                     version_withdrawn=version_listener, version_access_changed=version_listener)
