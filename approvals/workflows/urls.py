"""The dashboard, a workflow's page and its kill switch, a change's page, a run's page (and the
old address of a record's changes)."""

from django.urls import path

from . import hooks, views

urlpatterns = [
    path("", views.home, name="home"),
    # Before the workflow's page: "stop-all" would read as a workflow's name.
    path("workflows/stop-all/", views.stop_all, name="stop_all"),
    path("workflows/<slug:name>/", views.workflow_detail, name="workflow_detail"),
    path("workflows/<slug:name>/pause/", views.workflow_pause, name="workflow_pause"),
    path("workflows/<slug:name>/resume/", views.workflow_resume, name="workflow_resume"),
    path("workflows/<slug:name>/auto-pause/", views.workflow_auto_pause, name="workflow_auto_pause"),
    path("workflows/<slug:name>/runbook/", views.workflow_runbook, name="workflow_runbook"),
    path("workflows/<slug:name>/pause-address/", hooks.workflow_pause_address, name="workflow_pause_address"),
    # An alerting tool's address: no session, no CSRF token, the secret in the path.
    path("hooks/pause/<str:token>/", hooks.pause_hook, name="pause_hook"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    # The record's page is undo's (record_detail); its changes used to have a page of their own.
    path("records/<str:record_type>/<int:record_id>/changes/", views.record_changes, name="record_changes"),
]
