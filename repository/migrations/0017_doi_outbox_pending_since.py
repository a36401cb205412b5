from django.db import migrations, models
from django.db.models import F


def pending_since_last_change(apps, schema_editor):
    # Rows already pending have been behind at least since they were last written.
    DoiOutbox = apps.get_model("repository", "DoiOutbox")
    DoiOutbox.objects.filter(synced_generation__lt=F("generation")).update(pending_since=F("updated"))


class Migration(migrations.Migration):
    dependencies = [("repository", "0016_run_error_code")]

    operations = [
        migrations.AddField(model_name="doioutbox", name="pending_since",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="doioutbox", name="overdue_alerted_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(pending_since_last_change, migrations.RunPython.noop),
    ]
