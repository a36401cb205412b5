from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "repository.access"
    label = "access"
    verbose_name = "Access to files"
