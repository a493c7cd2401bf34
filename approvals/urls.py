"""The app's pages, one include per package; each package's urls.py names its pages."""

from django.urls import include, path

urlpatterns = [
    path("", include("approvals.workflows.urls")),
    path("", include("approvals.review.urls")),
    path("", include("approvals.rules.urls")),
    path("", include("approvals.undoing.urls")),
]
