"""The dashboard, a change's page, a run's page (and the old address of a record's changes)."""

from django.urls import path

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect

from . import views


# PLACEHOLDER until h-page merges: its workflow page takes this name (the lead drops this commit).
@login_required
def _workflow_page_placeholder(request, name):
    return redirect("workflow_rules", name)


urlpatterns = [
    path("", views.home, name="home"),
    path("workflows/<slug:name>/", _workflow_page_placeholder, name="workflow_detail"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    # The record's page is undo's (record_detail); its changes used to have a page of their own.
    path("records/<str:record_type>/<int:record_id>/changes/", views.record_changes, name="record_changes"),
]
