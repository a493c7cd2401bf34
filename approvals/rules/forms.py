"""Browser forms: the rule editor (one rule: its condition builder and its outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms

from .conditions import MAX_ROWS, InvalidRow, clean_row
from .fields import KIND_NAMES, OPERATORS, PROPOSAL, RECORDS, VALUES, catalogue, number_text
from .ruleset import DECISIONS, MAX_APPROVALS, REVIEW, InvalidRule, clean_rule

MAX_GROUPS = 10
MATCH_CHOICES = [("all", "all of these"), ("any", "any of these")]
OWNER_GROUP = ""


def field_choices() -> list:
    sections = {PROPOSAL: [], VALUES: [], RECORDS: []}
    for spec in catalogue().values():
        sections[spec.section].append((spec.key, spec.label))
    return [("", "— pick a field —"), *((section, choices) for section, choices in sections.items() if choices)]


def operator_choices(kind: str | None = None) -> list:
    if kind is not None:
        return [(o.key, o.symbol) for o in OPERATORS.values() if o.kind == kind]
    by_kind: dict[str, list] = {}
    for o in OPERATORS.values():
        by_kind.setdefault(f"for {KIND_NAMES[o.kind]}", []).append((o.key, o.symbol))
    return list(by_kind.items())


class RuleForm(forms.Form):
    """The rule itself: name, on/off, how its rows combine, and what happens when it matches."""

    name = forms.CharField(max_length=100)
    enabled = forms.BooleanField(required=False, label="On")
    match = forms.ChoiceField(choices=MATCH_CHOICES, label="When")
    decision = forms.ChoiceField(choices=list(DECISIONS.items()), label="Then")
    group = forms.ChoiceField(required=False, label="Reviewed by")
    approvals = forms.IntegerField(min_value=1, max_value=MAX_APPROVALS, required=False, label="Approvals needed")
    base_version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, groups: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].choices = [(OWNER_GROUP, "the record type's owner group"), *((g, g) for g in groups)]

    def clean_name(self) -> str:
        return " ".join(self.cleaned_data["name"].split())


class RowForm(forms.Form):
    """One condition row: field, operator, value."""

    field = forms.ChoiceField(choices=field_choices, required=True)
    op = forms.ChoiceField(choices=operator_choices, label="operator")
    value = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, refresh_url: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = catalogue().get(self._raw("field"))
        if self.spec is not None:
            # Offer only operators that fit the chosen field (checking still accepts any and explains).
            self.fields["op"].widget.choices = operator_choices(self.spec.kind)
            if self.spec.choices:
                self.fields["value"].widget.attrs["list"] = f"choices-{self.spec.key}"
        if refresh_url:
            # With JavaScript, picking a field redraws the row with its operators; without, saving explains.
            self.fields["field"].widget.attrs.update(
                {
                    "hx-post": refresh_url,
                    "hx-trigger": "change",
                    "hx-target": "#rule-editor",
                    "hx-swap": "outerHTML settle:0ms",
                    "hx-vals": '{"action": "refresh"}',
                }
            )

    def _raw(self, name: str):
        return self.data.get(self.add_prefix(name)) if self.is_bound else self.initial.get(name)

    @property
    def hint(self) -> str:
        if self.spec is None:
            return ""
        if self.spec.choices:
            return "one of: " + ", ".join(self.spec.choices)
        return KIND_NAMES[self.spec.kind] + (" (several: separate with commas)" if self.spec.kind != "number" else "")


class GroupForm(forms.Form):
    match = forms.ChoiceField(choices=MATCH_CHOICES, label="Group of")


@dataclass
class Group:
    index: int
    form: GroupForm
    rows: list[tuple[int, RowForm]] = field(default_factory=list)


# A draft is the editor's state as plain strings: what the page shows, valid or not.
# {"name", "enabled", "match", "decision", "group", "approvals", "base_version",
#  "rows": [{"field", "op", "value", "group": None | index}], "groups": [{"match"}]}


def draft_from_rule(rule: dict | None, *, base_version: int) -> dict:
    """The editor's starting state for an existing rule (or a blank new one)."""
    rule = rule or {
        "name": "",
        "enabled": True,
        "condition": {"match": "all", "rows": [{"field": "", "op": "", "value": ""}]},
        "outcome": {"decision": REVIEW, "group": OWNER_GROUP, "approvals": 1},
    }
    rows, groups = [], []
    for item in rule["condition"]["rows"]:
        if "rows" in item:
            groups.append({"match": item["match"]})
            rows += [_draft_row(r, len(groups) - 1) for r in item["rows"]]
        else:
            rows.append(_draft_row(item, None))
    outcome = rule["outcome"]
    return {
        "name": rule["name"],
        "enabled": rule["enabled"],
        "match": rule["condition"]["match"],
        "decision": outcome["decision"],
        "group": outcome.get("group", ""),
        "approvals": outcome.get("approvals") or 1,
        "base_version": base_version,
        "rows": rows,
        "groups": groups,
    }


def _draft_row(row: dict, group: int | None) -> dict:
    value = row.get("value", "")
    if isinstance(value, list):
        value = ", ".join(value)
    elif isinstance(value, int | float):
        value = number_text(value)
    return {"field": row.get("field", ""), "op": row.get("op", ""), "value": value, "group": group}


def draft_from_post(data) -> dict:
    """The editor's state from a POST, read leniently (checking comes later); at most MAX_ROWS rows."""
    groups = [{"match": data.get(f"group-{g}-match", "all")} for g in range(_count(data, "groups", MAX_GROUPS))]
    rows = []
    for i in range(_count(data, "rows", MAX_ROWS)):
        group = data.get(f"row-{i}-group", "")
        rows.append(
            {
                "field": data.get(f"row-{i}-field", ""),
                "op": data.get(f"row-{i}-op", ""),
                "value": data.get(f"row-{i}-value", ""),
                "group": int(group) if group.isdigit() and int(group) < len(groups) else None,
            }
        )
    keys = ("name", "match", "decision", "group", "approvals", "base_version")
    return {**{k: data.get(k, "") for k in keys}, "enabled": bool(data.get("enabled")), "rows": rows, "groups": groups}


def _count(data, name: str, limit: int) -> int:
    value = data.get(name, "0")
    return min(int(value), limit) if value.isdigit() else 0


def edited(draft: dict, action: str) -> dict:
    """The draft after a builder button: add_row, add_row:<group>, remove_row:<i>, add_group, remove_group:<g>."""
    verb, _, arg = action.partition(":")
    index = int(arg) if arg.isdigit() else None
    rows, groups = list(draft["rows"]), list(draft["groups"])
    blank = {"field": "", "op": "", "value": ""}
    if verb == "add_row" and len(rows) < MAX_ROWS:
        rows.append({**blank, "group": index if index is not None and index < len(groups) else None})
    elif verb == "remove_row" and index is not None and index < len(rows):
        rows.pop(index)
    elif verb == "add_group" and len(rows) < MAX_ROWS and len(groups) < MAX_GROUPS:
        groups.append({"match": "any"})
        rows.append({**blank, "group": len(groups) - 1})
    elif verb == "remove_group" and index is not None and index < len(groups):
        groups.pop(index)
        rows = [
            {**r, "group": r["group"] - 1 if r["group"] is not None and r["group"] > index else r["group"]}
            for r in rows
            if r["group"] != index
        ]
    return {**draft, "rows": rows, "groups": groups}


class RuleEditor:
    """The rule form with its condition rows and groups, bound like a formset (row-0-field, ...).

    Built from a draft: `bound=True` checks it (save, dry run), otherwise it only shows it.
    """

    def __init__(self, draft: dict, *, groups: list[str], other_names: set[str], bound: bool, url: str = ""):
        self.draft = draft
        self.other_names = other_names
        self.group_names = groups
        data = self._data(draft) if bound else None
        self.form = RuleForm(data, initial=None if bound else draft, groups=groups)
        self.row_forms = [
            RowForm(data, prefix=f"row-{i}", initial=None if bound else row, refresh_url=url)
            for i, row in enumerate(draft["rows"])
        ]
        self.groups = [
            Group(g, GroupForm(data, prefix=f"group-{g}", initial=None if bound else grp))
            for g, grp in enumerate(draft["groups"])
        ]
        self.top_rows = []
        for i, (row, form) in enumerate(zip(draft["rows"], self.row_forms, strict=True)):
            (self.groups[row["group"]].rows if row["group"] is not None else self.top_rows).append((i, form))
        self.rule: dict | None = None

    @staticmethod
    def _data(draft: dict) -> dict:
        data = {k: draft[k] for k in ("name", "match", "decision", "group", "approvals", "base_version")}
        if draft["enabled"]:
            data["enabled"] = "on"
        for i, row in enumerate(draft["rows"]):
            data |= {f"row-{i}-{k}": row[k] for k in ("field", "op", "value")}
        for g, grp in enumerate(draft["groups"]):
            data[f"group-{g}-match"] = grp["match"]
        return {k: str(v) if v is not None else "" for k, v in data.items()}

    @property
    def row_count(self) -> int:
        return len(self.row_forms)

    @property
    def can_add_row(self) -> bool:
        return len(self.row_forms) < MAX_ROWS

    @property
    def can_add_group(self) -> bool:
        return self.can_add_row and len(self.groups) < MAX_GROUPS

    def is_valid(self, *, rule_id: str | None = None) -> bool:
        """Check every part; on success `self.rule` is the checked rule."""
        valid = self.form.is_valid()
        rows: list[dict | None] = []
        for form in self.row_forms:
            row = None
            if form.is_valid():
                try:
                    row = clean_row(form.cleaned_data)
                except InvalidRow as exc:
                    form.add_error(exc.part, str(exc))
            rows.append(row)
            valid = valid and row is not None
        for group in self.groups:
            valid = group.form.is_valid() and valid
            if not group.rows:
                group.form.add_error(None, "An empty group: add a condition to it or remove it.")
                valid = False
        if valid and self.form.cleaned_data["name"].casefold() in self.other_names:
            self.form.add_error("name", "Another rule is already called that.")
            valid = False
        if not valid:
            return False
        try:
            self.rule = clean_rule(self._rule(rows, rule_id), groups=self.group_names)
        except InvalidRule as exc:
            for where, message in exc.errors.items():
                self.form.add_error(where if where in self.form.fields else None, message)
            return False
        return True

    def _rule(self, rows: list, rule_id: str | None) -> dict:
        data = self.form.cleaned_data
        top = [rows[i] for i, _ in self.top_rows]
        nested = [{"match": g.form.cleaned_data["match"], "rows": [rows[i] for i, _ in g.rows]} for g in self.groups]
        return {
            "id": rule_id,
            "name": data["name"],
            "enabled": data["enabled"],
            "condition": {"match": data["match"], "rows": top + nested},
            "outcome": {
                "decision": data["decision"],
                "group": data["group"],
                "approvals": data["approvals"] or 1,
            },
        }
