from django.conf import settings
from django.urls import path

from repository.web import badges, citing, crate, embargo, landing, notebook, run_data, search, seo, views

app_name = "repository"

urlpatterns = [
    path("", views.home, name="home"),
    path("search", search.search_page, name="search"),
    path("search/", search.search_page),
    path("records/", search.records_index, name="records_index"),
    path("uploads/", views.my_uploads, name="my_uploads"),
    path("uploads/new/", views.draft_new, name="draft_new"),
    path("uploads/<str:record_id>/", views.draft_detail, name="draft_detail"),
    path("uploads/<str:record_id>/edit/", views.draft_edit, name="draft_edit"),
    path("uploads/<str:record_id>/files/delete/", views.draft_file_delete_view, name="draft_file_delete"),
    path("uploads/<str:record_id>/submit/", views.draft_submit, name="draft_submit"),
    path("uploads/<str:record_id>/runs/", views.draft_rerun, name="draft_rerun"),
    path("uploads/<str:record_id>/discard/", views.draft_discard_view, name="draft_discard"),
    path("runs/<uuid:run_id>/", views.run_report, name="run_report"),
    path("runs/<uuid:run_id>/cancel/", views.run_cancel_view, name="run_cancel"),
    path("records/<str:record_id>/", landing.record_landing, name="record_landing"),
    path("records/<str:record_id>/linkset", landing.record_linkset, name="record_linkset"),
    path("records/<str:record_id>/badge.svg", badges.record_badge, name="record_badge"),
    path("records/<str:record_id>/versions/<int:number>/badge.svg", badges.record_badge, name="version_badge"),
    # The rendered notebook, for the landing page's <iframe sandbox> (served with a `sandbox` CSP).
    path("records/<str:record_id>/versions/<int:number>/notebook/", notebook.version_notebook,
         name="version_notebook"),
    path("records/<str:record_id>/versions/<int:number>/export/<str:fmt>", citing.version_export,
         name="version_export"),
    path("records/<str:record_id>/versions/<int:number>/download-all.zip", crate.version_crate_download,
         name="version_crate"),
    path("records/<str:record_id>/versions/new/", landing.version_new, name="version_new"),
    path("records/<str:record_id>/versions/<int:number>/", landing.record_landing, name="version_landing"),
    path("records/<str:record_id>/versions/<int:number>/linkset", landing.record_linkset, name="version_linkset"),
    path("records/<str:record_id>/versions/<int:number>/edit/", landing.version_correct, name="version_correct"),
    path("records/<str:record_id>/versions/<int:number>/embargo/lift/", embargo.version_embargo_lift,
         name="version_embargo_lift"),
    path("records/<str:record_id>/versions/<int:number>/withdraw/", landing.version_withdraw_view,
         name="version_withdraw"),
    path("records/<str:record_id>/versions/<int:number>/files/<path:file_path>", landing.published_file,
         name="published_file"),
    # The embedded registrar's resolver; services/dois.py reverses it for DOI_PROVIDER=local.
    path("doi/<path:doi>", landing.doi_resolve, name="doi_resolve"),
    # At the root: a sitemap may only list URLs under its own folder.
    path("sitemap.xml", seo.sitemap_index, name="sitemap_index"),
    path("sitemap-records-<int:page>.xml", seo.sitemap_records, name="sitemap_records"),
    path("sitemap-versions-<int:page>.xml", seo.sitemap_versions, name="sitemap_versions"),
    path("robots.txt", seo.robots_txt, name="robots_txt"),
    path("account/tokens/", views.tokens, name="tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]

if settings.RUNNER == "gitlab":
    # Signed, expiring links to a run's staged inputs (services/run_data.py); no login. Only the GitLab runner's
    # jobs fetch inputs from outside, so only then does the route exist: on any other runner a leaked or forged
    # signing key opens nothing. The runner is read at start, like every setting.
    urlpatterns.append(path("runs/<uuid:run_id>/data/<path:target_path>", run_data.run_data_download,
                            name="run_data"))
