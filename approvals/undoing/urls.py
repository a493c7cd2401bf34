"""Undoing a run, or what an agent did in a time window."""

from django.urls import path

from . import views

urlpatterns = [
    path("runs/<int:run_id>/undo", views.undo_run, name="undo_run"),
    path("undo-agent/", views.undo_agent, name="undo_agent"),
]
