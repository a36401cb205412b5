# The backup tier's five models moved to the app repository.backup (label "backup"), whose 0001_initial takes
# them over. Their tables keep their names (db_table), so this only removes them from this app's state: no table,
# column, index or row changes.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('repository', '0007_gitlab'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='BackupBag'),
                migrations.DeleteModel(name='BackupCopy'),
                migrations.DeleteModel(name='FixityCheck'),
                migrations.DeleteModel(name='BackupVolume'),
                migrations.DeleteModel(name='BackupRun'),
            ],
            database_operations=[],
        ),
    ]
