"""Conditions in plain words: read back for operators, and why a row matched, for reviewers and agents."""

from __future__ import annotations

from .fields import NUMBER, OPERATORS, SET, Facts, FieldSpec, Test, catalogue


def reason(row: dict, facts: Facts, test: Test) -> dict:
    """A matching row with what was seen: {"field", "op", "expected", "actual", "text"}."""
    spec = catalogue()[row["field"]]
    op, expected = OPERATORS[row["op"]], row["value"]
    actual = facts.get(spec.key)
    if spec.many:
        # `test` is the row's compiled test: keep the records' values that pass it.
        actual = [x for x in actual if test({spec.key: (x,)})]
    if spec.kind == SET:
        actual = sorted(actual)
        shown = {
            "any_of": [f for f in actual if f in expected],
            "all_of": expected,
            "only": actual,
            "none_of": expected,
        }[op.key]
        words = {"any_of": "changes", "all_of": "changes", "only": "changes only", "none_of": "changes none of"}
        text = f"{words[op.key]} {_join(spec, shown, ',' if op.key == 'none_of' else 'and')}"
    else:
        seen = _join(spec, actual if spec.many else [actual], "and")
        if op.kind == NUMBER:
            text = f"{spec.label} {seen} {op.symbol} {spec.display(expected)}"
        elif op.key in ("is", "in"):
            text = f"{spec.label} {seen}"
        elif op.key == "contains":
            text = f"{spec.label} {_short(seen)} contains “{expected}”"
        else:
            text = f"{spec.label} {seen}, not {_join(spec, expected if op.takes_list else [expected], 'or')}"
    return {"field": spec.key, "op": op.key, "expected": expected, "actual": actual, "text": text}


def condition_text(condition: dict) -> str:
    """The condition read back: "risk ≥ 0.7 or amount > 100"; "always" when it has no rows."""
    rows = condition.get("rows", [])
    if not rows:
        return "always"
    joiner = " or " if condition.get("match") == "any" else " and "
    parts = []
    for item in rows:
        if "rows" in item:
            inner = condition_text(item)
            parts.append(f"({inner})" if len(item["rows"]) > 1 else inner)
        else:
            parts.append(row_text(item))
    return joiner.join(parts)


def row_text(row: dict) -> str:
    spec = catalogue().get(row.get("field"))
    op = OPERATORS.get(row.get("op"))
    if spec is None or op is None:
        return f"{row.get('field')} {row.get('op')} {row.get('value')}"
    value = row["value"]
    if op.kind == NUMBER:
        return f"{spec.label} {op.symbol} {spec.display(value)}"
    if op.key == "in":
        return f"{spec.label} is {_join(spec, value, 'or')}"
    if op.key == "contains":
        return f"{spec.label} contains “{value}”"
    if op.kind == SET and op.key in ("any_of", "all_of"):
        return f"{spec.label} include {_join(spec, value, 'or' if op.key == 'any_of' else 'and')}"
    shown = _join(spec, value, ",") if op.takes_list else spec.display(value)
    return f"{spec.label} {op.symbol} {shown}"


def _join(spec: FieldSpec, values: list, word: str) -> str:
    shown = [spec.display(v) for v in values]
    if word == "," or len(shown) < 2:
        return ", ".join(shown)
    return ", ".join(shown[:-1]) + f" {word} " + shown[-1]


def _short(text: str, limit: int = 60) -> str:
    return f"“{text}”" if len(text) <= limit else f"“{text[: limit - 1]}…”"
