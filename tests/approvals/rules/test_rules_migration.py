"""Upgrading keeps routing as it was: each workflow's review threshold becomes version 1 of its rules."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from approvals.models import RuleSet
from approvals.rules.ruleset import clean_rules


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_the_threshold_into_rules():
    executor = MigrationExecutor(connection)
    executor.migrate([("approvals", "0001_initial")])
    old = executor.loader.project_state([("approvals", "0001_initial")]).apps
    old.get_model("approvals", "Workflow").objects.create(name="legacy", review_threshold=0.3)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    rule_set = RuleSet.objects.get(workflow__name="legacy")
    assert rule_set.version == 1
    assert rule_set.rules[0]["condition"]["rows"] == [{"field": "risk", "op": "lt", "value": 0.3}]
    assert clean_rules(rule_set.rules) == rule_set.rules  # what the migration wrote checks like an edit
