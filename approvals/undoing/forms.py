"""Forms for the undo pages. They only normalise input; services decide."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from undo import registry

from ..models import Agent


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class AgentWindowForm(forms.Form):
    """Every change by an agent (one version, or all) in a time window: the incident scope."""

    agent = forms.ChoiceField(label="Agent")
    version = forms.ChoiceField(label="Version", required=False)
    record_type = forms.ChoiceField(label="Records", required=False)
    since = forms.DateTimeField(label="From", widget=LocalDateTimeInput())
    until = forms.DateTimeField(label="Until", widget=LocalDateTimeInput(), required=False, help_text="Empty: now")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted(set(Agent.objects.values_list("name", flat=True)))
        versions = sorted(set(Agent.objects.values_list("version", flat=True)))
        self.fields["agent"].choices = [(n, n) for n in names]
        self.fields["version"].choices = [("", "every version"), *((v, f"v{v}") for v in versions)]
        self.fields["record_type"].choices = [
            ("", "every record type"),
            *((t.name, f"{t.label}s only") for t in registry.all_record_types()),
        ]

    def clean_until(self):
        return self.cleaned_data.get("until") or timezone.now()

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "The window must end after it starts.")
        return cleaned
