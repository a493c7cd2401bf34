"""Saving rules: a new immutable version, an event that says in plain words who changed what."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import IntegrityError

from approvals.models import Event, RuleSet
from approvals.rules import editing
from approvals.rules.editing import StaleRules, save_rules
from approvals.rules.ruleset import InvalidRule, describe_edits, moved, toggled, with_rule, without_rule
from tests.factories import make_rule

RISKY = make_rule("risky", [{"field": "risk", "op": "gte", "value": 0.7}])
LOW = make_rule("low", [{"field": "risk", "op": "lt", "value": 0.3}], "auto_apply")


def test_it_saves_numbered_versions_with_an_event(operator, workflow):
    v2 = save_rules(workflow=workflow, rules=[LOW, RISKY], user=operator, base_version=1)
    assert (v2.version, v2.created_by) == (2, operator)
    event = Event.objects.get(kind=Event.Kind.RULES_CHANGED)
    assert event.details == {"rule_set": v2.pk, "version": 2, "edits": event.details["edits"]}
    assert event.details["edits"] == [
        "removed rule 'below the review threshold'",
        "added rule 'low' (When risk < 0.3 → auto-apply)",
        "added rule 'risky' (When risk ≥ 0.7 → the record type's owner group reviews, 1 approval)",
    ]
    assert event.actor_label == "otto" and event.workflow == workflow


def test_versions_are_immutable(workflow):
    rule_set = workflow.rule_sets.get()
    with pytest.raises(ValueError, match="immutable"):
        rule_set.save()


def test_nothing_changed_saves_nothing(operator, workflow):
    assert save_rules(workflow=workflow, rules=workflow.rule_sets.get().rules, user=operator) is None
    assert RuleSet.objects.count() == 1 and not Event.objects.exists()


def test_an_invalid_rule_set_saves_nothing(operator, workflow):
    with pytest.raises(InvalidRule):
        save_rules(workflow=workflow, rules=[make_rule("bad", [{"field": "risk", "op": "is", "value": "x"}])])
    with pytest.raises(InvalidRule, match="There is no group named 'auditors'"):
        save_rules(workflow=workflow, rules=[make_rule("x", [], group="auditors")], user=operator)
    assert RuleSet.objects.count() == 1 and not Event.objects.exists()


def test_a_stale_base_version_is_refused(operator, workflow):
    save_rules(workflow=workflow, rules=[RISKY], user=operator, base_version=1)
    with pytest.raises(StaleRules, match="otto saved version 2 of these rules while you were editing"):
        save_rules(workflow=workflow, rules=[LOW], user=operator, base_version=1)


def test_a_concurrent_save_of_the_same_version_is_refused(operator, workflow):
    # Two editors read version 1 at once; the second insert of version 2 hits the unique constraint.
    with mock.patch.object(editing.RuleSet.objects, "create", side_effect=IntegrityError("unique")):
        with pytest.raises(StaleRules):
            save_rules(workflow=workflow, rules=[LOW], user=operator)


def test_the_global_defaults_are_versioned_apart(operator, workflow):
    assert save_rules(workflow=None, rules=[RISKY], user=operator).version == 1
    assert save_rules(workflow=None, rules=[RISKY, LOW], user=operator).version == 2
    assert save_rules(workflow=workflow, rules=[LOW], user=operator).version == 2
    assert Event.objects.filter(workflow=None).first().message == (
        "otto changed the global default rules (version 1): added rule 'risky' "
        "(When risk ≥ 0.7 → the record type's owner group reviews, 1 approval). "
        "Next: new proposals are routed by version 1; changes already routed keep their route."
    )


def test_edits_are_described_in_plain_words():
    renamed = {**RISKY, "name": "high risk"}
    assert describe_edits([RISKY], [renamed]) == ["renamed 'risky' to 'high risk'"]
    stricter = {**RISKY, "outcome": {"decision": "review", "group": "finance", "approvals": 2}}
    assert describe_edits([RISKY], [stricter]) == [
        "changed the outcome of 'risky' from “the record type's owner group reviews, 1 approval” "
        "to “finance reviews, 2 approvals”"
    ]
    assert describe_edits([RISKY, LOW], toggled([RISKY, LOW], LOW["id"])) == ["turned off 'low'"]
    assert describe_edits([RISKY, LOW], moved([RISKY, LOW], LOW["id"], -1)) == ["reordered the rules: 'low', 'risky'"]
    assert describe_edits([RISKY, LOW], without_rule([RISKY, LOW], RISKY["id"])) == ["removed rule 'risky'"]
    assert describe_edits([RISKY], with_rule([RISKY], LOW)) == ["added rule 'low' (When risk < 0.3 → auto-apply)"]
    assert describe_edits([RISKY], [RISKY]) == []


def test_moving_stays_within_bounds():
    rules = [RISKY, LOW]
    assert moved(rules, RISKY["id"], -1) == rules
    assert moved(rules, LOW["id"], 5) == rules
    assert moved(rules, "missing", 1) == rules
