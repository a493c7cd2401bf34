from django.urls import include, path

from . import views, views_records

urlpatterns = [
    path("", views.home, name="home"),
    path("", include("approvals.review.urls")),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("", include("approvals.rules.urls")),
    # The record's own page (timeline, restore) is undo's; this one lists the changes proposed on it.
    path("records/<str:record_type>/<int:record_id>/changes/", views_records.record_detail, name="record_changes"),
    path("", include("approvals.undoing.urls")),
]
