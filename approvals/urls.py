from django.urls import include, path

from . import views, views_records, views_review

urlpatterns = [
    path("", views.home, name="home"),
    path("review/", views_review.review, name="review"),
    path("review/alike", views_review.alike, name="alike"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("changes/<int:change_id>/approve", views_review.approve, name="approve"),
    path("changes/<int:change_id>/reject", views_review.reject, name="reject"),
    path("changes/<int:change_id>/edit", views_review.edit, name="edit"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("", include("approvals.urls_rules")),
    # The record's own page (timeline, restore) is undo's; this one lists the changes proposed on it.
    path("records/<str:record_type>/<int:record_id>/changes/", views_records.record_detail, name="record_changes"),
    path("runs/<int:run_id>/undo", views.undo_run, name="undo_run"),
    path("undo-agent/", views.undo_agent, name="undo_agent"),
]
