from django.apps import AppConfig


class HarvestConfig(AppConfig):
    name = "harvest"
    verbose_name = "Harvest"

    def ready(self) -> None:
        # Pages that show a data reference's dataset ask the core's hook; the core never imports harvest.
        from harvest.selectors import external_metadata_for_dois
        from repository import hooks

        hooks.register(external_metadata_for_dois=external_metadata_for_dois)
        # The provider's stored payloads are rewritten in the transaction of each change to what a record says.
        from harvest.provider.fragments import fragments_refresh_record

        hooks.listen(version_published=fragments_refresh_record, version_corrected=fragments_refresh_record,
                     version_withdrawn=fragments_refresh_record, version_access_changed=fragments_refresh_record)
