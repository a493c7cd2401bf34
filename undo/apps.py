from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class UndoConfig(AppConfig):
    name = "undo"
    verbose_name = "Governed records"

    def import_models(self):
        super().import_models()
        # Governed record types must be registered (and their historical models
        # created) while models load, so migrations and the admin see them.
        import_module(settings.GOVERNED_RECORDS_MODULE)

    def ready(self):
        from . import history  # noqa: F401  (connects the history-tagging receiver)
