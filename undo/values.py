"""Values agents and reviewers propose for governed fields: strict JSON → Python for one model
field (a wrong type is an error, not a guess), text no page should show refused, and Python
values back in the JSON form changes store. Used through `registry`'s record types."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.dateparse import parse_datetime

# Ids and whole numbers fit a signed 64-bit column.
MAX_INTEGER = 2**63 - 1

# Text agents and reviewers propose: never a lone UTF-16 surrogate (not Unicode; no page could
# show it), a control character (NUL included) or a bidirectional override that makes text read
# otherwise than it is; tab, newline and carriage return only in multi-line (TextField) fields.
_NOT_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# What an agent saw may hold what a record holds (a person may have typed a tab); only what
# no record can hold is refused.
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


class InvalidValue(ValueError):
    """A proposed value that does not fit its field; the message says why, in plain words."""


class KeyedInvalid(InvalidValue):
    """An invalid value of one named field (`key`), as a record type's checks report it."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def to_json(value: Any) -> Any:
    """A Python field value in the JSON form changes store (decimals as strings)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def check_text(value: str, model_field: models.Field, *, seen: bool = False) -> None:
    """Refuse text no page should show or no record can hold (see _NOT_IN_LINE); raise InvalidValue."""
    if seen:
        if _NOT_STORABLE.search(value):
            raise InvalidValue("may not hold NUL or a lone UTF-16 surrogate")
        return
    multiline = isinstance(model_field, models.TextField)
    bad = (_NOT_IN_TEXT if multiline else _NOT_IN_LINE).search(value)
    if bad is None:
        return
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        raise InvalidValue("must be valid Unicode text (it holds a lone UTF-16 surrogate)")
    if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        raise InvalidValue(f"may not hold the bidirectional override U+{ord(char):04X} (it makes text read otherwise)")
    where = "" if multiline else " (one line: no tab or newline)"
    raise InvalidValue(f"may not hold the control character U+{ord(char):04X}{where}")


def coerce(model_field: models.Field, value: Any, *, references: bool = True) -> Any:
    """Strict JSON → Python for one model field: a wrong type is an error, not a guess."""
    if value is None:
        if model_field.null:
            return None
        raise InvalidValue("may not be empty (null)")
    if isinstance(model_field, models.BooleanField):
        if not isinstance(value, bool):
            raise InvalidValue("must be true or false")
        result = value
    elif isinstance(model_field, models.ForeignKey):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue("must be the id (an integer) of a record")
        if not 1 <= value <= MAX_INTEGER:
            raise InvalidValue(f"must be the id of a record (a whole number from 1 to {MAX_INTEGER})")
        if references and not model_field.related_model._base_manager.filter(pk=value).exists():
            raise InvalidValue(f"no {model_field.related_model._meta.verbose_name} has id {value}")
        result = value
    elif isinstance(model_field, (models.IntegerField, models.AutoField)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue("must be a whole number")
        result = value
    elif isinstance(model_field, models.DecimalField):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidValue("must be a number")
        try:
            result = decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise InvalidValue("must be a number") from None
        if not result.is_finite():
            raise InvalidValue("must be a finite number")
        places, whole = model_field.decimal_places, model_field.max_digits - model_field.decimal_places
        if result.as_tuple().exponent < -places:
            raise InvalidValue(f"may have at most {places} decimal places")
        if abs(result) >= 10**whole:
            raise InvalidValue(f"must be less than {10**whole:,} (at most {whole} digits before the point)")
    elif isinstance(model_field, models.FloatField):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue("must be a number")
        result = float(value)
        if not math.isfinite(result):
            raise InvalidValue("must be a finite number")
    elif isinstance(model_field, models.DateTimeField):
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise InvalidValue("must be a date and time (ISO 8601)")
        result = parsed
    elif isinstance(model_field, (models.CharField, models.TextField)):
        if not isinstance(value, str):
            raise InvalidValue("must be text")
        if value == "" and not model_field.blank:
            raise InvalidValue("may not be empty")
        if model_field.max_length and len(value) > model_field.max_length:
            raise InvalidValue(f"may be at most {model_field.max_length} characters long (this is {len(value)})")
        result = value
    else:
        raise InvalidValue(f"fields of kind {type(model_field).__name__} cannot be changed by agents")
    if model_field.choices and result not in {k for k, _ in model_field.flatchoices}:
        allowed = ", ".join(str(k) for k, _ in model_field.flatchoices)
        raise InvalidValue(f"must be one of: {allowed}")
    try:
        model_field.run_validators(result)
    except ValidationError as exc:
        raise InvalidValue(" ".join(exc.messages)) from None
    if isinstance(result, decimal.Decimal):
        result = result.quantize(decimal.Decimal(1).scaleb(-model_field.decimal_places))
    return result
