from django.apps import AppConfig


class GitLabConfig(AppConfig):
    name = "repository.gitlab"
    label = "gitlab"
    verbose_name = "GitLab"

    def ready(self) -> None:
        # The core knows this app only through what it registers here (see repository/hooks.py).
        from repository import hooks
        from repository.gitlab.runner import GitLabRunner
        from repository.gitlab.services.mirror import version_mirror_enqueue, version_mirror_on_access_change
        from repository.runners.base import register_runner

        register_runner("gitlab", GitLabRunner.from_settings)
        hooks.listen(version_published=version_mirror_enqueue,
                     version_access_changed=version_mirror_on_access_change)
