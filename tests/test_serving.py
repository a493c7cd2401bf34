"""How the site is served by default: DEBUG off, pages of our own for 404 and 500."""

from __future__ import annotations

import os
import subprocess
import sys

from django.test import RequestFactory
from django.views.defaults import server_error

from tests.conftest import ROOT


def _setting(name: str, **env) -> str:
    """A setting as a fresh process reads it from this environment."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SITE_URL", "PORT", "DATABASE_URL")}
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environ, "DJANGO_SETTINGS_MODULE": "countersign.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_debug_is_off_unless_asked_for():
    assert _setting("DEBUG") == "False"
    assert _setting("DEBUG", DEBUG="true") == "True"


def test_the_site_url_follows_the_port_bin_run_serves_on():
    assert _setting("SITE_URL", PORT="18123") == "http://127.0.0.1:18123"
    assert _setting("SITE_URL", PORT="18123", SITE_URL="https://cs.example") == "https://cs.example"


def test_a_missing_page_is_ours_and_lists_no_url_patterns(client, reviewer):
    client.force_login(reviewer)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "Nothing here" in text and "countersign.css" in text
    assert "URLconf" not in text and "api/v1/" not in text


def test_a_server_error_shows_our_page_without_a_traceback(db):
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    text = response.content.decode()
    assert "Something went wrong on our side" in text
    assert "Traceback" not in text
