"""A real browser for the end-to-end tests: Playwright driving Debian's Chromium, headless.

`playwright install` cannot download here, so Playwright is pointed at the system browser.
A missing browser fails the browser tests (bin/test installs it with apt-get); it never skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django then refuses ORM calls made
# from it (the live server's data, the test's own checks) unless told that is safe. It is: the
# loop only drives the browser. Set for the whole process, since the loop outlives one test.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("COUNTERSIGN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM} and it is missing. bin/test installs it "
            "(apt-get install chromium, as root); or set COUNTERSIGN_CHROMIUM to a Chromium binary."
        )
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def screenshot(page):
    """Save a screenshot into test-artifacts/ (and, with COUNTERSIGN_DOCS_SCREENSHOTS=1, into docs/)."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str, *, docs: str | None = None, **options) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), **options)
        if docs and os.environ.get("COUNTERSIGN_DOCS_SCREENSHOTS") == "1":
            page.screenshot(path=str(ARTIFACTS.parent / "docs" / docs), **options)
        return path

    return take
