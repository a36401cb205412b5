from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        # The core asks moderation through its hooks; it never imports this app (see repository/hooks.py).
        from moderation.corrections import correction_hold, corrections_reviewed
        from moderation.notifications import notify_corrected
        from moderation.permissions import version_moderated_by
        from moderation.selectors import (
            communities_listed,
            community_names,
            community_of_versions,
            moderators_of_version,
            request_latest_for_version,
        )
        from moderation.services import review_submit_by_slug
        from repository import hooks

        hooks.register(submit_for_review=review_submit_by_slug, moderates_version=version_moderated_by,
                       review_of=request_latest_for_version, moderators_of=moderators_of_version,
                       corrections_reviewed=corrections_reviewed, hold_correction=correction_hold,
                       communities_of=community_of_versions, community_names=community_names,
                       communities_listed=communities_listed)
        hooks.listen(version_corrected=notify_corrected)
