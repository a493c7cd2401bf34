"""The dashboard, a change's page, a run's page and a record's changes page."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    # The record's own page (timeline, restore) is undo's; this one lists the changes proposed on it.
    path("records/<str:record_type>/<int:record_id>/changes/", views.record_detail, name="record_changes"),
]
