from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from django.urls import reverse

        from countersign.outbox import dispatcher
        from undo import host

        from . import access
        from .undoing import receivers  # noqa: F401  (marks changes undone / redone when undo reports back)
        from .workflows.views import record_changes_section

        # Record timelines link the change and run tags on history rows to their pages.
        host.set_resolver("change", lambda pk: reverse("change_detail", args=[pk]))
        host.set_resolver("run", lambda pk: reverse("run_detail", args=[pk]))
        host.set_run_names(_run_names)
        # Undo's pages ask the one access rule; a record's page shows the changes proposed on it.
        host.set_access(may_see=access.may_see_records, may_undo=access.may_undo)
        host.set_record_section(record_changes_section)
        # Undo's tasks go through the outbox, like ours: after commit, off the request thread, swept.
        host.set_dispatcher(dispatcher.dispatch)


def _run_names(run_ids: set[int]) -> dict[int, str]:
    from .models import Run

    return dict(Run.objects.filter(pk__in=run_ids).values_list("pk", "external_id"))
