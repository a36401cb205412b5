"""The record's unique views on its search documents, for the `mostviewed` sort.

On SQLite, Django adds a NOT NULL column with a default by rebuilding the table, which would drop the triggers
that keep the FTS5 index in step (0015_search_index); SQLite's own ADD COLUMN keeps them, so the column is added
with it there. Existing documents take their record's count from UsageCount."""

from django.db import migrations, models

SQLITE_ADD = ('ALTER TABLE repository_searchdocument ADD COLUMN "views" bigint unsigned NOT NULL DEFAULT 0 '
              'CHECK ("views" >= 0)')
SQLITE_DROP = 'ALTER TABLE repository_searchdocument DROP COLUMN "views"'
FIELD = models.PositiveBigIntegerField(default=0)


def add_column(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_ADD)
    else:
        schema_editor.add_field(apps.get_model("repository", "SearchDocument"), _named(FIELD.clone()))


def drop_column(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_DROP)
    else:
        schema_editor.remove_field(apps.get_model("repository", "SearchDocument"), _named(FIELD.clone()))


def _named(field):
    field.set_attributes_from_name("views")
    return field


def copy_counts(apps, schema_editor):
    SearchDocument = apps.get_model("repository", "SearchDocument")
    UsageCount = apps.get_model("repository", "UsageCount")
    for record_id, unique_views in UsageCount.objects.filter(version__isnull=True, unique_views__gt=0) \
            .values_list("record_id", "unique_views").iterator():
        SearchDocument.objects.filter(record_id=record_id).update(views=unique_views)


class Migration(migrations.Migration):
    dependencies = [("repository", "0017_doi_outbox_pending_since")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddField(model_name="searchdocument", name="views", field=FIELD)],
            database_operations=[migrations.RunPython(add_column, drop_column)],
        ),
        migrations.AddIndex(
            model_name="searchdocument",
            index=models.Index(fields=["is_latest", "views", "published_at"], name="searchdoc_latest_views"),
        ),
        migrations.RunPython(copy_counts, migrations.RunPython.noop),
    ]
