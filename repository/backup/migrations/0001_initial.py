# The backup tier's models, taken over from the repository app (repository/migrations/0005_backup_tier.py
# created their tables, 0008 removed them from that app's state). The tables keep their names (db_table), so the
# models are created in this app's state only; the database is not touched. The content types move with them,
# so permissions given on them and admin log entries stay attached.

import django.db.models.deletion
from django.db import migrations, models

MODELS = ['backuprun', 'backupvolume', 'backupcopy', 'backupbag', 'fixitycheck']


def move_content_types(apps, schema_editor, *, source='repository', destination='backup'):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    taken = set(ContentType.objects.using(db).filter(app_label=destination, model__in=MODELS)
                .values_list('model', flat=True))
    ContentType.objects.using(db).filter(app_label=source, model__in=set(MODELS) - taken).update(
        app_label=destination)
    ContentType.objects.clear_cache()


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source='backup', destination='repository')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('repository', '0008_backup_tier_to_backup_app'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='BackupRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='running', max_length=10)),
                        ('trigger', models.CharField(blank=True, help_text='command, schedule, ...', max_length=20)),
                        ('target', models.CharField(help_text='Where it wrote: a directory or s3://bucket/prefix.', max_length=600)),
                        ('started_at', models.DateTimeField(auto_now_add=True)),
                        ('heartbeat_at', models.DateTimeField(auto_now=True, help_text='Updated after every volume.')),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('volumes_written', models.PositiveIntegerField(default=0)),
                        ('blobs_written', models.PositiveIntegerField(default=0)),
                        ('bytes_written', models.BigIntegerField(default=0, help_text='Bytes of blob contents written.')),
                        ('bags_written', models.PositiveIntegerField(default=0)),
                        ('error', models.TextField(blank=True)),
                    ],
                    options={
                        'db_table': 'repository_backuprun',
                        'ordering': ['-started_at', '-id'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'running')), fields=('status',), name='one_backup_running')],
                    },
                ),
                migrations.CreateModel(
                    name='BackupVolume',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('sequence', models.PositiveIntegerField(unique=True)),
                        ('target', models.CharField(help_text='The target it was written to.', max_length=600)),
                        ('object_name', models.CharField(help_text='Its name in the target, e.g. volumes/<name>.tar.', max_length=300)),
                        ('manifest_name', models.CharField(help_text="Its manifest's separate copy in the target.", max_length=300)),
                        ('size', models.BigIntegerField()),
                        ('sha256', models.CharField(max_length=64)),
                        ('manifest_sha256', models.CharField(max_length=64)),
                        ('blob_count', models.PositiveIntegerField(default=0)),
                        ('bag_count', models.PositiveIntegerField(default=0)),
                        ('storage_class', models.CharField(blank=True, help_text='S3 storage class; empty for a directory.', max_length=40)),
                        ('locked_until', models.DateTimeField(blank=True, help_text='S3 object lock retention, if any.', null=True)),
                        ('created', models.DateTimeField()),
                        ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='volumes', to='backup.backuprun')),
                    ],
                    options={
                        'db_table': 'repository_backupvolume',
                        'ordering': ['sequence'],
                    },
                ),
                migrations.CreateModel(
                    name='BackupCopy',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('member', models.CharField(help_text="The tar member's name.", max_length=200)),
                        ('header_offset', models.BigIntegerField(help_text="Byte offset of the member's tar header in the volume.")),
                        ('data_offset', models.BigIntegerField(help_text="Byte offset of the member's contents in the volume.")),
                        ('verified_at', models.DateTimeField(blank=True, help_text='Last read back with a matching sha256.', null=True)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('blob', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='backup_copy', to='repository.blob')),
                        ('volume', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='copies', to='backup.backupvolume')),
                    ],
                    options={
                        'verbose_name_plural': 'backup copies',
                        'db_table': 'repository_backupcopy',
                    },
                ),
                migrations.CreateModel(
                    name='BackupBag',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('member', models.CharField(help_text="The bag's folder in the volume.", max_length=300)),
                        ('digest', models.CharField(help_text='sha256 of the exported metadata (nbarchive.json).', max_length=64)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='backup_bags', to='repository.version')),
                        ('volume', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='bags', to='backup.backupvolume')),
                    ],
                    options={
                        'db_table': 'repository_backupbag',
                        'ordering': ['version', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='FixityCheck',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('checked_at', models.DateTimeField()),
                        ('primary_ok', models.BooleanField(null=True)),
                        ('backup_ok', models.BooleanField(null=True)),
                        ('repaired', models.BooleanField(default=False, help_text='The primary object was rewritten from the backup.')),
                        ('detail', models.TextField(blank=True)),
                        ('last_failure_at', models.DateTimeField(blank=True, null=True)),
                        ('blob', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='fixity', to='repository.blob')),
                    ],
                    options={
                        'db_table': 'repository_fixitycheck',
                    },
                ),
                migrations.AddConstraint(
                    model_name='backupvolume',
                    constraint=models.CheckConstraint(condition=models.Q(('sequence__gte', 1)), name='backup_volume_sequence_positive'),
                ),
                migrations.AddConstraint(
                    model_name='backupcopy',
                    constraint=models.UniqueConstraint(fields=('volume', 'member'), name='backup_member_unique'),
                ),
                migrations.AddIndex(
                    model_name='backupbag',
                    index=models.Index(fields=['version', '-id'], name='backup_bag_latest'),
                ),
                migrations.AddIndex(
                    model_name='fixitycheck',
                    index=models.Index(fields=['checked_at'], name='fixity_checked_at'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back, elidable=True),
    ]
