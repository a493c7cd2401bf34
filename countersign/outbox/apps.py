from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "countersign.outbox"
    label = "outbox"
    verbose_name = "Outbox"

    def ready(self):
        from . import dispatcher  # noqa: F401  (connects the receivers that mark dispatches done)
