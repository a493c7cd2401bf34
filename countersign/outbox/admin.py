from django.contrib import admin, messages

from .dispatcher import hand_over_again
from .models import Dispatch


@admin.register(Dispatch)
class DispatchAdmin(admin.ModelAdmin):
    # Rows are written by the code that asks for the work; admins look, and may hand one over again.
    list_display = ("id", "task", "state", "attempts", "due_at", "sent_at", "done_at", "last_error")
    list_filter = ("state", "task")
    search_fields = ("task",)
    actions = ["hand_over"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Hand the selected dispatches to the workers again (their tasks are safe to run twice)")
    def hand_over(self, request, queryset):
        taken = hand_over_again(queryset)
        messages.success(request, f"{taken} of {queryset.count()} handed to the workers.")
