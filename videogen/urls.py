"""Root URLconf: the admin and everything the common app serves."""

from django.contrib import admin
from django.urls import include, path

from common.admin.spend import spend_view

urlpatterns = [
    # The operator's spend page (issue 15), under the admin's prefix and guarded by its login.
    path("admin/spend/", admin.site.admin_view(spend_view), name="admin-spend"),
    path("admin/", admin.site.urls),
    path("", include("common.urls")),
]
