"""Django templates that cannot fail on a stored value.

A lone UTF-16 surrogate can sit in a JSON column (SQLite keeps the `\\ud800` escape that
json.dumps writes) and would make the finished page impossible to encode as UTF-8: every
page showing it would answer 500. Intake refuses such text; this is the backstop for values
that arrived another way (an older version, a raw write): each is shown as U+FFFD instead.
"""

from __future__ import annotations

import re

from django.template.backends.django import DjangoTemplates

_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (a no-op for text without one)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


class ScrubbedTemplate:
    def __init__(self, template):
        self._template = template

    def __getattr__(self, name):
        return getattr(self._template, name)

    def render(self, context=None, request=None) -> str:
        return scrub(self._template.render(context, request))


class SafeDjangoTemplates(DjangoTemplates):
    """The Django template engine, each rendered page scrubbed of lone surrogates."""

    def from_string(self, template_code):
        return ScrubbedTemplate(super().from_string(template_code))

    def get_template(self, template_name):
        return ScrubbedTemplate(super().get_template(template_name))
