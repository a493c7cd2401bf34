"""Settings for Countersign, read from the environment.

Every default is safe for the embedded run (SQLite under ./var, a local Redis);
production sets DATABASE_URL, REDIS_URL, SECRET_KEY and DEBUG=False.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# The agent client is its own package (clients/python, `pip install ./clients/python` for
# agents); the demo agent and the tests import it from the checkout, without installing it.
sys.path.insert(0, str(BASE_DIR / "clients" / "python"))
VAR_DIR = Path(os.environ.get("COUNTERSIGN_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default)
    if value not in ("True", "False", "true", "false", "1", "0"):
        raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}")
    return value in ("True", "true", "1")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envsecret(name: str) -> str | None:
    """Read NAME_FILE (a mounted secret) before NAME."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name)


def _local_secret_key() -> str:
    # For the embedded run only: one random key per checkout, kept out of git.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# Off unless asked for (`DEBUG=true`, or `bin/run --dev`): on, every 404 lists the URL patterns
# and every error shows a traceback with settings to whoever reaches the site.
DEBUG = envbool("DEBUG", "False")
SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and not os.environ.get("DATABASE_URL", "sqlite:").startswith("sqlite:"):
        # A database server means processes on several machines, which must share one key.
        raise ImproperlyConfigured("Set SECRET_KEY (or SECRET_KEY_FILE) when the database is not SQLite")
    SECRET_KEY = _local_secret_key()
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Where people and the demo agent reach this site (links in e-mails); bin/run serves on $PORT.
SITE_URL = os.environ.get("SITE_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "simple_history",
    "ninja",
    "countersign.outbox",
    "demo",
    "undo",
    "approvals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "countersign.urls"
WSGI_APPLICATION = "countersign.wsgi.application"

TEMPLATES = [
    {
        # Django's engine, its pages scrubbed of lone surrogates (see the module); named "django"
        # so that django-template-partials still wraps its loaders.
        "BACKEND": "countersign.template_backend.SafeDjangoTemplates",
        "NAME": "django",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "approvals.workflows.context_processors.paused_banner",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'countersign.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web process and a worker write at once: WAL, a busy timeout and
    # BEGIN IMMEDIATE, or writers fail with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        # A 64 MB page cache and in-memory temporary b-trees (IN lists, sorts): batch
        # reads and writes of thousands of rows (undo, apply) stay off the disk.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
        ),
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", str(VAR_DIR / "test.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "countersign@localhost")
# For EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend (what bin/run uses): a file per sending.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))

# Agent API bodies: a batch of 1,000 changes with long reasoning fits; more is refused with 413.
API_MAX_BODY_BYTES = envint("API_MAX_BODY_BYTES", str(8 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
API_MAX_BATCH = 1000

# Governed record types are registered by this module (see undo/registry.py).
GOVERNED_RECORDS_MODULE = os.environ.get("GOVERNED_RECORDS_MODULE", "demo.governed")
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# Celery: the database is the truth; the broker only carries hints to work.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest task (an apply batch takes seconds), far below the 1 h default.
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "600"),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # Publishing: one quick retry, then give up (kombu's default waits ~6 s on a dead broker).
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
}
# Publishing tries once; the outbox's sweeper does the rest (see countersign/outbox/dispatcher.py).
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_TIME_LIMIT = 300
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {
        "task": "countersign.outbox.tasks.sweep_outbox_task",
        "schedule": timedelta(seconds=envint("SWEEP_EVERY_SECONDS", "5")),
    },
    "sweep-claims": {
        "task": "approvals.tasks.sweep_claims_task",
        "schedule": timedelta(seconds=envint("SWEEP_EVERY_SECONDS", "5")),
    },
    "review-digests": {
        "task": "approvals.tasks.send_review_digests_task",
        "schedule": timedelta(seconds=envint("REVIEW_DIGEST_EVERY_SECONDS", "300")),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Applying: how many changes one task claims, how long a claim lasts, how often to retry.
APPLY_BATCH_SIZE = envint("APPLY_BATCH_SIZE", "200")
# A live worker renews its claims every third of the lease; a dead one's are retried once it runs out.
APPLY_LEASE_SECONDS = envint("APPLY_LEASE_SECONDS", "15")
APPLY_MAX_ATTEMPTS = envint("APPLY_MAX_ATTEMPTS", "5")
# Background work (countersign.outbox): a dispatch not done this long after it was due or last
# handed over is handed over again, at most OUTBOX_MAX_ATTEMPTS times; done ones are kept for days.
REQUEUE_AFTER_SECONDS = envint("REQUEUE_AFTER_SECONDS", "30")
OUTBOX_MAX_ATTEMPTS = envint("OUTBOX_MAX_ATTEMPTS", "10")
OUTBOX_KEEP_DAYS = envint("OUTBOX_KEEP_DAYS", "7")

# Decision callbacks to agents: attempts, back-off (base × 2^(attempt-1) seconds), timeout.
CALLBACK_MAX_ATTEMPTS = envint("CALLBACK_MAX_ATTEMPTS", "6")
CALLBACK_RETRY_BASE_SECONDS = envint("CALLBACK_RETRY_BASE_SECONDS", "10")
CALLBACK_TIMEOUT_SECONDS = envint("CALLBACK_TIMEOUT_SECONDS", "5")
# Callbacks go to public addresses only (an agent names the URL). Networks listed here, comma-separated
# (e.g. "10.20.0.0/16,127.0.0.1"), are allowed too: an operator's deliberate internal receivers.
CALLBACK_ALLOWED_NETWORKS = [n for n in os.environ.get("CALLBACK_ALLOWED_NETWORKS", "").split(",") if n.strip()]

# The review queue: items per page (a reviewer may ask for 5–100).
REVIEW_PAGE_SIZE = envint("REVIEW_PAGE_SIZE", "10")
# Undo: records planned and written per transaction (whole changes only); undos of
# at most this many records run in the request, larger ones on a worker.
UNDO_BATCH_SIZE = envint("UNDO_BATCH_SIZE", "5000")
UNDO_INLINE_MAX_RECORDS = envint("UNDO_INLINE_MAX_RECORDS", "1000")
UNDO_LEASE_SECONDS = envint("UNDO_LEASE_SECONDS", "300")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
