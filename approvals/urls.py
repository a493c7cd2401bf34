"""The app's pages, one include per package; each package's urls.py names its pages."""

from django.urls import include, path

from . import views_records

urlpatterns = [
    path("", include("approvals.workflows.urls")),
    path("", include("approvals.review.urls")),
    path("", include("approvals.rules.urls")),
    # The record's own page (timeline, restore) is undo's; this one lists the changes proposed on it.
    path("records/<str:record_type>/<int:record_id>/changes/", views_records.record_detail, name="record_changes"),
    path("", include("approvals.undoing.urls")),
]
