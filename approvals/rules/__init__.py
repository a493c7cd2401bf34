"""Routing rules: operators edit them in the browser; every proposal is routed by them.

- `fields`: the closed catalogue of fields a condition reads, and the operators.
- `conditions`: checking a condition and compiling it into closures (no eval).
- `wording`: conditions in plain words, and why a row matched.
- `ruleset`: rules as data; checking a rule set, plain-words read-back, what an edit changed.
- `engine`: facts of a proposal, the active rules, `route()` (what intake calls).
- `editing`: saving a new version, with its audit event.
- `dry_run`: replaying recent proposals against draft rules.
- `forms`: the rule editor (one rule at a time, its condition rows).
- `views`, `urls`: the rules pages, the same views for a workflow's rules and for the global
  defaults (/workflows/<name>/rules/, /rules/defaults/). Templates: `templates/approvals/rule*.html`.
"""

from .engine import ActiveRules, Routing, attributes_by_change, current_rules, latest_rule_set, route

__all__ = ["ActiveRules", "Routing", "attributes_by_change", "current_rules", "latest_rule_set", "route"]
