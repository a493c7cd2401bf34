"""The kill switch's forms: pause (a reason), resume, stop all, the automatic pause, the runbook."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from ..models import AutoPause, Workflow
from .services import REASON_MAX, RUNBOOK_JOBS


class PauseForm(forms.Form):
    """Why: a short reason, required (it is on the banner every page shows, and in the audit trail)."""

    reason = forms.CharField(
        max_length=REASON_MAX,
        strip=True,
        error_messages={
            "required": "Say in a few words why you pause it: people read it on every page until it is resumed.",
            "max_length": f"Keep the reason short: at most {REASON_MAX} characters (it has %(show_value)d).",
        },
        widget=forms.TextInput(attrs={"placeholder": "why, in a few words", "maxlength": REASON_MAX}),
    )


class ResumeForm(forms.Form):
    to_review = forms.BooleanField(
        required=False,
        label="Send everything held to review",
        help_text="Instead of routing each held change again by the current rules, a person decides each one.",
    )


class AutoPauseForm(forms.ModelForm):
    class Meta:
        model = AutoPause
        fields = [
            "enabled",
            "window_minutes",
            "sample_size",
            "min_sample",
            "max_rejection_pct",
            "max_failure_pct",
            "max_undo_pct",
            "max_applied_per_minute",
            "max_same_value",
            "same_value_minutes",
        ]
        labels = {
            "enabled": "On",
            "window_minutes": "Window (minutes)",
            "sample_size": "Rates over the last",
            "min_sample": "Minimum sample",
            "max_rejection_pct": "Rejection threshold (%)",
            "max_failure_pct": "Failure threshold (%)",
            "max_undo_pct": "Undo threshold (%)",
            "max_applied_per_minute": "Applied per minute, at most",
            "max_same_value": "Same value on more records than",
            "same_value_minutes": "… within (minutes)",
        }

    def clean(self):
        cleaned = super().clean()
        for name in ("max_rejection_pct", "max_failure_pct", "max_undo_pct"):
            value = cleaned.get(name)
            if value is not None and not 1 <= value <= 100:
                self.add_error(name, "A share between 1% and 100% (leave it empty to turn this signal off).")
        for name in ("window_minutes", "sample_size", "min_sample", "same_value_minutes"):
            if cleaned.get(name) == 0:
                self.add_error(name, "At least 1.")
        return cleaned


class RunbookForm(forms.Form):
    """Who does each job when the workflow goes wrong: active people, by name."""

    def __init__(self, *args, workflow: Workflow, **kwargs):
        super().__init__(*args, **kwargs)
        people = get_user_model().objects.filter(is_active=True).order_by("username")
        labels = {
            "runbook_pauser": "Pauses it",
            "runbook_undo_approver": "Approves undoing it",
            "runbook_rerunner": "Reruns it after a fix",
            "runbook_log_reader": "Reads the logs",
        }
        for field_name in RUNBOOK_JOBS:
            self.fields[field_name] = forms.ModelChoiceField(
                people, required=False, label=labels[field_name], empty_label="nobody"
            )
            self.initial.setdefault(field_name, getattr(workflow, f"{field_name}_id"))
        self.fields["notes"] = forms.CharField(
            required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="Notes"
        )
        self.initial.setdefault("notes", workflow.runbook_notes)

    def people(self) -> dict:
        return {name: self.cleaned_data[name] for name in RUNBOOK_JOBS}
