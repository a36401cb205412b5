# GitLabLink and GitLabImport, taken over from the repository app (repository/migrations/0007_gitlab.py created
# their tables, 0009 removed them from that app's state). The tables keep their names (db_table), so the models are
# created in this app's state only; the database is not touched. The content types move with them, so
# permissions given on them and admin log entries stay attached.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = ['gitlablink', 'gitlabimport']


def move_content_types(apps, schema_editor, *, source='repository', destination='gitlab'):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    taken = set(ContentType.objects.using(db).filter(app_label=destination, model__in=MODELS)
                .values_list('model', flat=True))
    ContentType.objects.using(db).filter(app_label=source, model__in=set(MODELS) - taken).update(
        app_label=destination)
    ContentType.objects.clear_cache()


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source='gitlab', destination='repository')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('repository', '0009_gitlab_to_gitlab_app'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='GitLabLink',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('project_id', models.BigIntegerField(help_text="GitLab's numeric id: stays when the project moves.", unique=True)),
                        ('project_path', models.CharField(help_text='namespace/project when it was linked.', max_length=255)),
                        ('web_url', models.URLField(blank=True, max_length=500)),
                        ('webhook_secret_hash', models.CharField(max_length=64)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('updated', models.DateTimeField(auto_now=True)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('record', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='gitlab_link', to='repository.record')),
                    ],
                    options={
                        'db_table': 'repository_gitlablink',
                    },
                ),
                migrations.CreateModel(
                    name='GitLabImport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('project_id', models.BigIntegerField()),
                        ('ref', models.CharField(help_text='The tag (or branch, or commit) that was asked for.', max_length=255)),
                        ('sha', models.CharField(blank=True, help_text='The commit the ref named when imported.', max_length=64)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=10)),
                        ('source', models.CharField(choices=[('webhook', 'Tag push webhook'), ('api', 'Import request')], max_length=10)),
                        ('message', models.TextField(blank=True)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('record', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='gitlab_imports', to='repository.record')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('version', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='gitlab_imports', to='repository.version')),
                    ],
                    options={
                        'db_table': 'repository_gitlabimport',
                        'ordering': ['-created', '-id'],
                        'constraints': [models.UniqueConstraint(fields=('record', 'project_id', 'ref'), name='gitlab_import_once_per_ref')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back, elidable=True),
    ]
