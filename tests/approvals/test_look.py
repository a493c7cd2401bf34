"""What a person sees before reading a word: badge colours, and the tab's icon."""

from __future__ import annotations

import re
from pathlib import Path

from tests.factories import make_workflow

CSS = re.sub(
    r"/\*.*?\*/", "", (Path(__file__).resolve().parents[2] / "static" / "countersign.css").read_text(), flags=re.S
)


def colour_of(classes: list[str]) -> str:
    """The text colour the stylesheet gives a badge with `classes`: the last matching rule wins,
    as in the browser (every badge rule here has the same specificity)."""
    colour = ""
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", CSS):
        for selector in selectors.split(","):
            names = re.findall(r"\.([\w-]+)", selector.strip())
            if (
                names
                and names[0] == "badge"
                and selector.strip().startswith(".badge")
                and set(names[1:]) <= set(classes)
            ):
                found = re.search(r"(?<![-\w])color:\s*([^;]+)", body)
                if found and len(names) > 1:
                    colour = found.group(1).strip()
    return colour


def badge_classes(html: str, label: str) -> list[str]:
    found = re.search(r'<span class="(badge [^"]+)">' + label + "</span>", html)
    assert found, f"no badge reading {label!r}"
    return found.group(1).split()


def test_a_running_workflow_is_not_in_the_warning_colour_and_a_paused_one_is(client, operator):
    make_workflow("ticket-triage")
    make_workflow("refund-bot", state="paused")
    client.force_login(operator)
    html = client.get("/").content.decode()
    assert colour_of(badge_classes(html, "running")) == "var(--ok)"
    assert colour_of(badge_classes(html, "paused")) == "var(--warn)"


def test_every_page_names_an_icon_that_is_served(client, operator):
    client.force_login(operator)
    html = client.get("/").content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', html).group(1)
    assert href.endswith("favicon.ico")
    for path in (href, "/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/x-icon"
        assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file
