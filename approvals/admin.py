from django import forms
from django.contrib import admin, messages
from django.db import models

from undo.admin import ReadOnlyAdmin

from .agents import outbound
from .lifecycle import Actor
from .models import Agent, Approval, CallbackDelivery, Change, Event, RuleSet, Run, Workflow
from .workflows.services import pause_workflow, resume_workflow


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "state", "owner", "review_wait_threshold")
    actions = ["resume_workflows"]

    @admin.action(description="Resume the selected workflows (what they held is routed again)")
    def resume_workflows(self, request, queryset):
        for workflow in queryset:
            outcome = resume_workflow(workflow=workflow, actor=Actor.person(request.user))
            messages.success(request, f"Resumed {workflow.name}. {outcome.sentence()}")

    def save_model(self, request, obj, form, change):
        # The state moves only through the kill switch's services: a pause holds what was queued
        # and writes its event; setting a paused workflow running is a resume (what it held is
        # routed again).
        moved = change and "state" in form.changed_data
        wanted = obj.state
        if moved:
            obj.state = Workflow.State.PAUSED if wanted == Workflow.State.RUNNING else Workflow.State.RUNNING
        super().save_model(request, obj, form, change)
        if moved and wanted == Workflow.State.PAUSED:
            outcome = pause_workflow(workflow=obj, actor=Actor.person(request.user), reason="paused in the admin pages")
            messages.success(request, outcome.sentence())
        elif moved:
            outcome = resume_workflow(workflow=obj, actor=Actor.person(request.user))
            messages.success(request, f"Resumed {obj.name}. {outcome.sentence()}")


class AgentForm(forms.ModelForm):
    def clean_callback_url(self):
        # The same rule as the API's: public addresses only, unless the operator allows the network.
        url = self.cleaned_data["callback_url"]
        if url:
            try:
                outbound.check_url(url)
            except outbound.CallbackRefused as exc:
                raise forms.ValidationError(f"The callback URL {exc}.") from None
        return url


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentForm
    list_display = ("name", "version", "token_prefix", "is_active", "callback_url")
    readonly_fields = ("token_hash", "token_prefix")
    filter_horizontal = ("workflows",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["new_callback_secret"]

    @admin.action(description="Give the selected agents a new callback signing secret (shown once)")
    def new_callback_secret(self, request, queryset):
        # The secret is shown here once; the agent's operator copies it into the agent.
        for agent in queryset.exclude(callback_url=""):
            secret = agent.set_callback(agent.callback_url)
            agent.save(update_fields=["callback_secret"])
            messages.warning(request, f"New callback secret for {agent}: {secret}")

    def save_model(self, request, obj, form, change):
        if "callback_url" in form.changed_data:
            secret = obj.set_callback(obj.callback_url)
            if secret:
                messages.warning(request, f"Callback secret for {obj} (shown once): {secret}")
        super().save_model(request, obj, form, change)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("external_id", "workflow", "agent", "started_at")
    list_select_related = ("workflow", "agent")


@admin.register(Change)
class ChangeAdmin(ReadOnlyAdmin):
    # Statuses move only through the lifecycle (review pages, API, workers).
    list_display = ("id", "operation_id", "record_type", "operation", "status", "risk", "created_at")
    list_select_related = ("run",)
    raw_id_fields = ("run", "workflow", "agent", "approver")


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ("change", "reviewer", "created_at")
    list_select_related = ("change", "reviewer")
    raw_id_fields = ("change",)


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(ReadOnlyAdmin):
    # Delivery status of decisions sent to agents: state, attempts, the last answer.
    list_display = ("id", "change", "agent", "state", "attempts", "last_status_code", "last_error", "next_attempt_at")
    list_filter = ("state",)
    list_select_related = ("change", "agent")
    raw_id_fields = ("change",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "actor_label", "message")
    list_filter = ("kind",)  # a choices filter: its options come from Event.Kind, not a query
    ordering = ("-created_at", "-id")  # the audit trail reads newest first


@admin.register(RuleSet)
class RuleSetAdmin(ReadOnlyAdmin):
    # Rules are edited on the rules pages, which version and audit every save.
    list_display = ("workflow", "version", "created_by", "created_at", "summary")
    list_select_related = ("workflow", "created_by")
