from django.apps import AppConfig


class BackupConfig(AppConfig):
    name = "repository.backup"
    label = "backup"
    verbose_name = "Backup tier"
