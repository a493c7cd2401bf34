from django.urls import path

from . import views

urlpatterns = [
    path("records/<str:record_type>/<int:record_id>/", views.record_detail, name="record_detail"),
    path(
        "records/<str:record_type>/<int:record_id>/restore/<int:history_id>/",
        views.restore,
        name="record_restore",
    ),
    path("undos/", views.undo_list, name="undo_list"),
    path("undos/<int:undo_id>/", views.undo_detail, name="undo_detail"),
    path("undos/<int:undo_id>/progress", views.undo_progress, name="undo_progress"),
    path("undos/<int:undo_id>/redo", views.redo, name="undo_redo"),
    path("undos/<int:undo_id>/retry", views.retry, name="undo_retry"),
]
