"""Forms for the review pages. They only read and normalise input; services decide."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.db import models

from undo import registry

from ..models import RISK_BANDS, Agent, Change, Run, Workflow
from .queue import AGE_LABELS, Alike, Cursor, QueueFilter

RUN_NUMBER = "Not a run number: open a run's changes from its page."


class QueueFilterForm(forms.Form):
    workflow = forms.ModelChoiceField(Workflow.objects.all(), to_field_name="name", required=False, empty_label="any")
    agent = forms.ModelChoiceField(Agent.objects.all(), required=False, empty_label="any")
    record_type = forms.ChoiceField(required=False, label="Record type")
    risk = forms.ChoiceField(
        choices=[("", "any")] + [(band, band) for band in RISK_BANDS], required=False, label="Risk"
    )
    age = forms.ChoiceField(choices=[("", "any"), *AGE_LABELS.items()], required=False, label="Waiting")
    queue = forms.SlugField(required=False, max_length=100, widget=forms.HiddenInput)
    size = forms.IntegerField(required=False, min_value=5, max_value=100, widget=forms.HiddenInput)
    after = forms.CharField(required=False, max_length=80, widget=forms.HiddenInput)
    before = forms.CharField(required=False, max_length=80, widget=forms.HiddenInput)
    # One run's changes (the run page links here); with record type, operation and values,
    # one alike group of it ("open the list").
    run = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        widget=forms.HiddenInput,
        error_messages={key: RUN_NUMBER for key in ("invalid", "min_value", "max_value")},
    )
    operation = forms.ChoiceField(
        choices=[("", "")] + Change.Operation.choices, required=False, widget=forms.HiddenInput
    )
    values = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["record_type"].choices = [("", "any")] + [(r.name, r.label) for r in registry.all_record_types()]

    def clean_after(self):
        return self._cursor("after")

    def clean_before(self):
        return self._cursor("before")

    def _cursor(self, name) -> Cursor | None:
        text = self.cleaned_data[name]
        if not text:
            return None
        try:
            return Cursor.decode(text)
        except ValueError:
            raise forms.ValidationError("Not a position in the queue; start from the first page.") from None

    def clean_run(self) -> Run | None:
        pk = self.cleaned_data["run"]
        if pk is None:
            return None
        run = Run.objects.select_related("workflow", "agent").filter(pk=pk).first()
        if run is None:
            raise forms.ValidationError(f"There is no run {pk}.")
        return run

    def clean_values(self):
        text = self.cleaned_data["values"]
        if not text:
            return None
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise forms.ValidationError("Not a set of proposed values.")
        return values

    def clean(self):
        data = super().clean()
        if "run" not in data:
            return data  # the run's own error says what is wrong
        alike = [data.get("run"), data.get("record_type"), data.get("operation"), data.get("values")]
        if any(v not in (None, "") for v in (data.get("operation"), data.get("values"))):
            if any(v in (None, "") for v in alike):
                raise forms.ValidationError(
                    "A group of alike changes needs its run, record type, operation and values."
                )
            data["alike"] = Alike(data["run"].pk, data["record_type"], data["operation"], json.dumps(data["values"]))
        return data

    def queue_filter(self) -> QueueFilter:
        data = self.cleaned_data
        return QueueFilter(
            workflow=data.get("workflow"),
            agent=data.get("agent"),
            record_type=data.get("record_type") or "",
            risk=data.get("risk") or "",
            age=data.get("age") or "",
            queue=data.get("queue") or "",
            run=data.get("run"),
            alike=data.get("alike"),
        )

    @property
    def page_size(self) -> int:
        return (self.cleaned_data.get("size") if self.is_valid() else None) or settings.REVIEW_PAGE_SIZE


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        strip=True,
        error_messages={"required": "Say why you reject the change: the agent reads the reason."},
    )


class BulkForm(forms.Form):
    ids = forms.RegexField(regex=r"^\d+(,\d+)*$", max_length=20000, widget=forms.HiddenInput)
    action = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")], widget=forms.HiddenInput)
    reason = forms.CharField(max_length=2000, required=False, strip=True)

    def clean(self):
        data = super().clean()
        if data.get("action") == "reject" and not data.get("reason"):
            self.add_error("reason", "Say why you reject these changes: the agent reads the reason.")
        return data

    def change_ids(self) -> list[int]:
        return [int(i) for i in self.cleaned_data["ids"].split(",")]


class EditValuesForm(forms.Form):
    """The proposed values as fields a reviewer can correct; one form field per proposed field."""

    def __init__(self, *args, change: Change, **kwargs):
        super().__init__(*args, **kwargs)
        self.change = change
        self.record_type = registry.get(change.record_type)
        current = change.values_to_apply()
        for name in change.values:
            governed = self.record_type.fields[name]
            self.fields[name] = _form_field(governed.model_field, governed.label)
            self.initial[name] = current.get(name)

    def proposed_values(self) -> dict:
        """The corrected values in the JSON form changes store (the service checks them strictly)."""
        values = {}
        for name, value in self.cleaned_data.items():
            model_field = self.record_type.fields[name].model_field
            if value in (None, "") and isinstance(model_field, models.CharField | models.TextField):
                value = ""
            values[name] = registry.to_json(value)
        return values


def _form_field(model_field: models.Field, label: str) -> forms.Field:
    required = not (model_field.blank or model_field.null)
    if isinstance(model_field, models.ForeignKey):
        # An id, not a drop-down of every customer.
        return forms.IntegerField(label=f"{label} (id)", required=required)
    if isinstance(model_field, models.BooleanField):
        return forms.BooleanField(label=label, required=False)
    field = model_field.formfield(required=required, label=label)
    if isinstance(model_field, models.TextField):
        field.widget = forms.Textarea(attrs={"rows": 4})
    return field
