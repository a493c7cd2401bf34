"""The agent API's one error shape, and reading request bodies strictly.

Every 4xx answer is `{"detail": [{"loc": [...], "msg": "..."}]}`: `loc` is where the
problem is (`["body", "changes", 3, "risk"]`, `["path", "change_id"]`, `["header",
"Content-Type"]`, or `[]` for the request as a whole) and `msg` says what is wrong in
plain words, never naming our classes or echoing a long input back.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from ninja import NinjaAPI
from ninja.parser import Parser
from pydantic import BaseModel

# Record ids and every other integer the API reads fit a signed 64-bit column.
MAX_ID = 2**63 - 1
# An integer literal this long is out of every range; it is read as this stand-in so the
# range check answers for it (Python refuses to read integers of more than 4,300 digits).
_TOO_LONG_DIGITS = 30
_HUGE = 10**_TOO_LONG_DIGITS

# What an identifier (workflow, run id, operation id, record type) may hold: printable
# characters and the ASCII space, no control or formatting character (Rust regex syntax,
# checked by pydantic without a Python call).
IDENTIFIER = r"^[^\p{C}\p{Zl}\p{Zp}]+$"
# What free text (reasoning) may not hold: control characters other than tab, newline and
# carriage return, and the bidirectional overrides that make text read otherwise than it is.
FREE_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\x{202a}-\x{202e}\x{2066}-\x{2069}]*$"
_PATTERN_MESSAGES = {
    IDENTIFIER: "may hold only printable characters (no control or formatting characters)",
    FREE_TEXT: "may not hold control characters (other than tab and newline) or bidirectional overrides",
}

_SHOWN = 60  # longest name or key an error message repeats
_MAX_ITEMS = 20  # problems listed in one answer


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str


class Error(BaseModel):
    """Every 4xx answer of the API."""

    detail: list[ErrorItem]


def shorten(text: Any) -> Any:
    """A name or key as an error repeats it: long ones cut, so an error stays small."""
    if isinstance(text, str) and len(text) > _SHOWN:
        return text[:_SHOWN] + "…"
    return text


def error_body(loc: list, msg: str) -> dict:
    return {"detail": [{"loc": [shorten(part) for part in loc], "msg": msg}]}


class BodyError(Exception):
    """A body that cannot be read at all: `status` 400 (not JSON) or 415 (not sent as JSON)."""

    def __init__(self, status: int, loc: list, message: str):
        self.status = status
        self.loc = loc
        self.message = message
        super().__init__(message)


def _parse_int(text: str) -> int:
    if len(text) <= _TOO_LONG_DIGITS:
        return int(text)
    return -_HUGE if text.startswith("-") else _HUGE


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


class StrictJSON(Parser):
    """JSON bodies only: sent as JSON (else 415), valid UTF-8 and valid JSON (else 400)."""

    def parse_body(self, request: HttpRequest) -> Any:
        if not is_json(request.content_type or ""):
            raise BodyError(
                415, ["header", "Content-Type"], "Send the body as JSON, with Content-Type: application/json."
            )
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyError(400, ["body"], f"The body is not valid UTF-8 (at byte {exc.start}).") from None
        try:
            return json.loads(text, parse_int=_parse_int)
        except json.JSONDecodeError as exc:
            raise BodyError(
                400, ["body"], f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        except (ValueError, RecursionError):
            raise BodyError(400, ["body"], "The body is not valid JSON.") from None


# pydantic's error types, in our words. `{...}` are filled from the error's context.
_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "not a field here (check its spelling)",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
    "string_type": "must be text",
    "string_unicode": "must be text in valid Unicode (it holds a lone UTF-16 surrogate)",
    "string_too_short": "may not be empty",
    "string_too_long": "may be at most {max_length} characters long",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (NaN is not a number, nor is Infinity)",
    "bool_type": "must be true or false",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
    "too_short": "must hold at least {min_length} item(s)",
    "too_long": "may hold at most {max_length} items",
    "literal_error": "must be one of {expected}",
}


def _message(error: dict) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        text = _PATTERN_MESSAGES.get(ctx.get("pattern"), "holds characters that are not allowed")
    elif kind == "value_error":
        text = str(ctx.get("error") or "is not valid").removeprefix("Value error, ")
    else:
        text = _MESSAGES.get(kind, "is not valid")
        try:
            text = text.format(**ctx)
        except (KeyError, IndexError, ValueError):
            text = _MESSAGES.get(kind, "is not valid").split(" {")[0]
    names = [part for part in error.get("loc", ()) if isinstance(part, str) and part not in ("body", "payload")]
    return f"{shorten(names[-1])}: {text}" if names else f"The body {text}."


def plain_errors(errors: list[dict]) -> list[dict]:
    """ninja's validation errors in the API's shape: our words, `loc` without the parameter's name."""
    items = []
    for error in errors[:_MAX_ITEMS]:
        loc = list(error.get("loc", ()))
        if loc[:2] == ["body", "payload"]:
            loc = ["body", *loc[2:]]
        if loc and loc[-1] == "[key]":  # pydantic marks a bad key so; the key itself says where
            loc = loc[:-1]
        items.append({"loc": [shorten(part) for part in loc], "msg": _message(error)})
    if len(errors) > _MAX_ITEMS:
        items.append({"loc": [], "msg": f"… and {len(errors) - _MAX_ITEMS} more problems."})
    return items


class AgentAPI(NinjaAPI):
    """A NinjaAPI whose every answer is JSON: also a wrong method (ninja answers those in plain
    text) and a path it does not know (Django would answer with an HTML page)."""

    def _get_urls(self):
        urls = super()._get_urls()
        for pattern in urls:
            pattern.callback = self._json_method_not_allowed(pattern.callback)
        urls.append(re_path(r"^.*$", self._unknown_path))
        return urls

    def _json_method_not_allowed(self, view):
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
                allowed = response["Allow"]
                response = self.create_response(
                    request, error_body([], f"This URL answers {allowed}, not {request.method}."), status=405
                )
                response["Allow"] = allowed
            return response

        wrapped.csrf_exempt = True
        return wrapped

    def _unknown_path(self, request: HttpRequest) -> HttpResponse:
        return self.create_response(
            request,
            error_body(["path"], "There is nothing at this URL; the API's paths are listed at /api/v1/docs."),
            status=404,
        )

    _unknown_path.csrf_exempt = True
