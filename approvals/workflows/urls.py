"""The dashboard, a change's page and a run's page."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
]
