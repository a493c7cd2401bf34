from django.contrib import admin

from .models import Undo


class ReadOnlyAdmin(admin.ModelAdmin):
    """For what changes only through its own path (services, the lifecycle, undo): admins look, never edit."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Undo)
class UndoAdmin(ReadOnlyAdmin):
    # Undos are asked for and run from the run, record and undo pages.
    list_display = ("id", "kind", "description", "status", "requested_by_label", "records_reverted", "created_at")
    list_filter = ("kind", "status")
    raw_id_fields = ("target", "requested_by")
