"""Columns that every governed record's history row carries."""

from __future__ import annotations

from django.db import models


class GovernedHistory(models.Model):
    """Abstract base for historical models of governed records (simple-history `bases=`).

    The ids are plain integers, not foreign keys: `undo` knows nothing of the
    app that proposes changes; it only tags each snapshot with what produced it.
    """

    cs_change_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    cs_run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    cs_agent_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    cs_agent_label = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        abstract = True
