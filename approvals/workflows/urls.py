"""The dashboard, a change's page, a run's page (and the old address of a record's changes)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    # The record's page is undo's (record_detail); its changes used to have a page of their own.
    path("records/<str:record_type>/<int:record_id>/changes/", views.record_changes, name="record_changes"),
]
