"""Keep the stored OAI-PMH payloads inline and uncompressed on PostgreSQL.

A row holds both payloads (about 1.4 kB of oai_dc and 2.3 kB of DataCite XML), over the 2 kB at which PostgreSQL
compresses a row's long values (pglz) or moves them to the TOAST table, so that reading a page of a thousand
decompressed every payload, or fetched its TOAST chunks through their index. A page is a read of this
text, so the table trades space for that time: rows up to 8160 bytes (toast_tuple_target's maximum, a whole page)
stay as they are; only a larger row (a very long description) is compressed. Rows written before this migration
stay compressed until rewritten (`manage.py oai_fragments_rebuild`). Other databases: nothing to do.
"""

from django.db import migrations

TABLE = "harvest_oaifragment"


def inline(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} SET (toast_tuple_target = 8160)")


def default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} RESET (toast_tuple_target)")


class Migration(migrations.Migration):

    dependencies = [
        ("harvest", "0002_oai_fragments"),
    ]

    operations = [
        migrations.RunPython(inline, default),
    ]
