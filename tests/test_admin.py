"""Admin pages render for an admin, and records that change only through their own paths cannot be edited there."""

from __future__ import annotations

import pytest
from django.contrib import admin


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_admin_changelist_renders(client, admin_user, model):
    client.force_login(admin_user)
    url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("label", ["approvals.Change", "approvals.Event", "approvals.RuleSet", "undo.Undo"])
def test_audited_records_are_read_only(rf, admin_user, label):
    from django.apps import apps

    model_admin = admin.site._registry[apps.get_model(label)]
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
