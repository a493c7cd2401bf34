"""Event kinds say what happened: a status move's kind follows from the move (the lifecycle's
table, copied here as it stands), and the kinds nothing wrote are gone. Old lines keep their
words: the audit trail is append-only, only the kind is read anew."""

from django.db import migrations, models

# (from status, to status) → kind, as in approvals.lifecycle.ALLOWED when this was written.
MOVES = {
    ("proposed", "auto_approved"): "proposed",
    ("proposed", "pending_review"): "proposed",
    ("proposed", "refused"): "proposed",
    ("auto_approved", "queued"): "queued",
    ("auto_approved", "held"): "held",
    ("pending_review", "approved"): "approved",
    ("pending_review", "rejected"): "rejected",
    ("approved", "queued"): "queued",
    ("approved", "held"): "held",
    ("held", "queued"): "routed",
    ("held", "pending_review"): "routed",
    ("held", "refused"): "routed",
    ("queued", "applying"): "claimed",
    ("queued", "held"): "held",
    ("applying", "applied"): "applied",
    ("applying", "failed"): "failed",
    ("applying", "conflict"): "conflict",
    ("applying", "queued"): "retry",
    ("conflict", "approved"): "approved",
    ("conflict", "rejected"): "rejected",
    ("applied", "undone"): "undone",
    ("failed", "queued"): "queued",
    ("undone", "queued"): "queued",
    ("undone", "applied"): "redone",
}
# A move outside the table (none is known) takes the kind of where it went.
BY_TARGET = {
    "auto_approved": "proposed",
    "pending_review": "proposed",
    "refused": "proposed",
    "approved": "approved",
    "rejected": "rejected",
    "held": "held",
    "queued": "queued",
    "applying": "claimed",
    "applied": "applied",
    "failed": "failed",
    "conflict": "conflict",
    "undone": "undone",
}
# Old kinds each written by one thing only.
RENAMED = {
    "change.approval": "approved",  # one approval of several
    "change.edited": "corrected",
    "change.callback": "callback",
    "rules.saved": "rules_changed",
    "workflow": "resumed",
    "system": "digest",
}
# Old kinds nothing wrote, mapped in case a row has one.
UNUSED = {
    "change.proposed": "proposed",
    "change.conflict": "conflict",
    "change.failed": "failed",
    "run.started": "proposed",
}
FINISHED = {"undo": "undone", "redo": "redone", "restore": "restored"}


def forwards(apps, schema_editor):
    Event = apps.get_model("approvals", "Event")
    moves = Event.objects.filter(kind="change.status")
    for (frm, to), kind in MOVES.items():
        moves.filter(from_status=frm, to_status=to).update(kind=kind)
    for to, kind in BY_TARGET.items():
        moves.filter(to_status=to).update(kind=kind)
    for old, new in {**RENAMED, **UNUSED}.items():
        Event.objects.filter(kind=old).update(kind=new)
    undos = Event.objects.filter(kind="undo")
    undos.filter(details__status="failed").update(kind="failed")
    for undo_kind, kind in FINISHED.items():
        undos.filter(details__status="done", details__kind=undo_kind).update(kind=kind)
    undos.update(kind="undo_requested")


def backwards(apps, schema_editor):
    Event = apps.get_model("approvals", "Event")
    # An undo's own lines first: they have no status move and name the undo in their details.
    Event.objects.filter(
        kind__in=["undo_requested", "failed", *FINISHED.values()], from_status="", details__has_key="undo"
    ).update(kind="undo")
    Event.objects.filter(kind__in=set(MOVES.values())).exclude(from_status="").update(kind="change.status")
    for old, new in RENAMED.items():
        Event.objects.filter(kind=new).update(kind=old)


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0007_event_kind_undo'),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
        migrations.AlterField(
            model_name='event',
            name='kind',
            field=models.CharField(choices=[('proposed', 'proposed'), ('routed', 'routed again'), ('approved', 'approved'), ('rejected', 'rejected'), ('held', 'held'), ('queued', 'queued'), ('claimed', 'claimed by a worker'), ('applied', 'applied'), ('conflict', 'conflict'), ('failed', 'failed'), ('retry', 'to retry'), ('undone', 'undone'), ('redone', 'redone'), ('corrected', 'corrected'), ('callback', 'agent told'), ('undo_requested', 'undo asked for'), ('restored', 'record restored'), ('resumed', 'workflow resumed'), ('rules_changed', 'rules changed'), ('digest', 'review digest sent')], max_length=40),
        ),
    ]
