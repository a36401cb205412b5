"""The file access of each search document (the `access` facet and filter, and what a hit shows), and the end of
its embargo.

As in 0018_search_document_views: on SQLite the columns are added with SQLite's own ADD COLUMN, because Django's
table rebuild would drop the triggers that keep the FTS5 index in step (0015_search_index). Existing documents
take their version's access."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery

ACCESS = models.CharField(max_length=16, default="open")
EMBARGO_UNTIL = models.DateField(null=True)
SQLITE_ADD = ('ALTER TABLE repository_searchdocument ADD COLUMN "access" varchar(16) NOT NULL DEFAULT \'open\'',
              'ALTER TABLE repository_searchdocument ADD COLUMN "embargo_until" date NULL')
SQLITE_DROP = ('ALTER TABLE repository_searchdocument DROP COLUMN "embargo_until"',
               'ALTER TABLE repository_searchdocument DROP COLUMN "access"')


def add_columns(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_ADD:
            schema_editor.execute(statement)
    else:
        model = apps.get_model("repository", "SearchDocument")
        schema_editor.add_field(model, _named(ACCESS.clone(), "access"))
        schema_editor.add_field(model, _named(EMBARGO_UNTIL.clone(), "embargo_until"))


def drop_columns(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    else:
        model = apps.get_model("repository", "SearchDocument")
        schema_editor.remove_field(model, _named(EMBARGO_UNTIL.clone(), "embargo_until"))
        schema_editor.remove_field(model, _named(ACCESS.clone(), "access"))


def _named(field, name):
    field.set_attributes_from_name(name)
    return field


def copy_access(apps, schema_editor):
    SearchDocument = apps.get_model("repository", "SearchDocument")
    Version = apps.get_model("repository", "Version")
    version = Version.objects.filter(pk=OuterRef("version_id"))
    SearchDocument.objects.exclude(version__access_files="open").update(
        access=Subquery(version.values("access_files")[:1]),
        embargo_until=Subquery(version.values("embargo_until")[:1]))


class Migration(migrations.Migration):
    dependencies = [("repository", "0019_version_file_access")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(model_name="searchdocument", name="access", field=ACCESS),
                migrations.AddField(model_name="searchdocument", name="embargo_until", field=EMBARGO_UNTIL),
            ],
            database_operations=[migrations.RunPython(add_columns, drop_columns)],
        ),
        migrations.RunPython(copy_access, migrations.RunPython.noop),
    ]
