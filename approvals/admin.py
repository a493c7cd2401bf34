from django.contrib import admin

from .models import Agent, Change, Event, RuleSet, Run, Workflow


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "state", "owner")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "token_prefix", "is_active")
    readonly_fields = ("token_hash", "token_prefix")
    filter_horizontal = ("workflows",)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("external_id", "workflow", "agent", "started_at")
    list_select_related = ("workflow", "agent")


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    # Read-only: statuses move only through the lifecycle (review pages, API, workers).
    list_display = ("id", "operation_id", "record_type", "operation", "status", "risk", "created_at")
    list_select_related = ("run",)
    raw_id_fields = ("run", "workflow", "agent", "approver")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "message")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RuleSet)
class RuleSetAdmin(admin.ModelAdmin):
    # Read-only: rules are edited on the rules pages, which version and audit every save.
    list_display = ("workflow", "version", "created_by", "created_at", "summary")
    list_select_related = ("workflow", "created_by")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
