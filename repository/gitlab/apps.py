from django.apps import AppConfig


class GitLabConfig(AppConfig):
    name = "repository.gitlab"
    label = "gitlab"
    verbose_name = "GitLab"
