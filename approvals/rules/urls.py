"""Routing-rule pages: the same views for a workflow's rules and for the global defaults."""

from django.urls import path

from . import views as v


def both(route: str, view, name: str) -> list:
    return [
        path(f"workflows/<slug:workflow>/rules/{route}", view, name=f"workflow_{name}"),
        path(f"rules/defaults/{route}", view, name=f"default_{name}"),
    ]


urlpatterns = [
    *both("", v.rules_page, "rules"),
    *both("new", v.rule_edit, "rule_new"),
    *both("<str:rule_id>/edit", v.rule_edit, "rule_edit"),
    *both("<str:rule_id>/toggle", v.rule_toggle, "rule_toggle"),
    *both("<str:rule_id>/move", v.rule_move, "rule_move"),
    *both("<str:rule_id>/delete", v.rule_delete, "rule_delete"),
    *both("versions/<int:version>/", v.rules_version, "rules_version"),
    *both("versions/<int:version>/restore", v.rules_restore, "rules_restore"),
]
