from django.urls import path

from moderation import views

app_name = "moderation"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<int:request_id>/", views.request_detail, name="request_detail"),
    path("<int:request_id>/act/", views.request_act, name="request_act"),
    path("<int:request_id>/comment/", views.request_comment, name="request_comment"),
    path("<int:request_id>/corrections/<int:correction_id>/decide/", views.correction_decide,
         name="correction_decide"),
    path("<int:request_id>/diff/cells/", views.cell_diff, name="cell_diff"),
    path("<int:request_id>/notebook/", views.notebook_render, name="notebook_render"),
    path("<int:request_id>/notebook/download/", views.notebook_download, name="notebook_download"),
]
