from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from approvals.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", api.urls),
    path("", include("undo.urls")),
    path("", include("approvals.urls")),
]
