from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("review/", views.review, name="review"),
    path("changes/<int:change_id>/", views.change_detail, name="change_detail"),
    path("changes/<int:change_id>/approve", views.approve, name="approve"),
    path("changes/<int:change_id>/reject", views.reject, name="reject"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/undo", views.undo_run, name="undo_run"),
    path("undo-agent/", views.undo_agent, name="undo_agent"),
]
