"""Hand the work that was waiting for a worker when the outbox came in to the outbox.

Before it, sweepers re-found queued changes, pending callbacks and queued undos by their status;
now only an open Dispatch row brings a task to a worker. Without these rows, a change queued (or
an undo asked for, or a callback due for a retry) just before the upgrade would wait for good.
The tasks are safe to run twice, so a row for work a worker already has costs nothing.
"""

from django.db import migrations
from django.utils import timezone

BATCH = 200


def hand_over(apps, schema_editor):
    Change = apps.get_model("approvals", "Change")
    CallbackDelivery = apps.get_model("approvals", "CallbackDelivery")
    Undo = apps.get_model("undo", "Undo")
    Dispatch = apps.get_model("outbox", "Dispatch")
    now = timezone.now()
    rows = []
    queued = list(Change.objects.filter(status="queued").order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(queued), BATCH):
        rows.append(Dispatch(task="approvals.tasks.apply_changes_task", args=[queued[start : start + BATCH]], due_at=now))
    for pk, due in CallbackDelivery.objects.filter(state="pending").values_list("pk", "next_attempt_at"):
        rows.append(Dispatch(task="approvals.tasks.deliver_decision_task", args=[pk], due_at=due or now))
    for pk in Undo.objects.filter(status__in=["queued", "running"]).values_list("pk", flat=True):
        rows.append(Dispatch(task="undo.tasks.execute_undo_task", args=[pk], due_at=now))
    Dispatch.objects.bulk_create(rows, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0008_event_kinds_say_what_happened"),
        ("outbox", "0001_initial"),
        ("undo", "0002_undo_owner_choices"),
    ]

    operations = [migrations.RunPython(hand_over, migrations.RunPython.noop)]
