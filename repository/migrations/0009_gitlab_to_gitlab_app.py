# GitLabLink and GitLabImport moved to the app repository.gitlab (label "gitlab"), whose 0001_initial takes them
# over. Their tables keep their names (db_table), so this only removes them from this app's state: no table,
# column, index or row changes.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('repository', '0008_backup_tier_to_backup_app'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='GitLabImport'),
                migrations.DeleteModel(name='GitLabLink'),
            ],
            database_operations=[],
        ),
    ]
