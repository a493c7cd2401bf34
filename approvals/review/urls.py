"""The review queue and the decisions taken on it."""

from django.urls import path

from . import views

urlpatterns = [
    path("review/", views.review, name="review"),
    path("review/alike", views.alike, name="alike"),
    path("changes/<int:change_id>/approve", views.approve, name="approve"),
    path("changes/<int:change_id>/reject", views.reject, name="reject"),
    path("changes/<int:change_id>/edit", views.edit, name="edit"),
]
