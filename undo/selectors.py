"""Reading history for people: who wrote a version, what it changed, a record's timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Subquery
from django.urls import reverse

from . import host, registry
from .models import Undo
from .scopes import Scope
from .tables import DELETED, Slot, python_value, table


def display_slot(slot: Slot, value: tuple | None) -> str:
    """A slot's value (as stored, or as the ORM reads it) as a person reads it."""
    if value is None:
        return "(did not exist)"
    if slot.name == DELETED:
        at, by, why = value
        if at is None:
            return "not deleted"
        return f"deleted by {by or 'someone'}" + (f": {why}" if why else "")
    return slot.record_type.display(slot.name, registry.to_json(python_value(slot.fields[0], value[0])))


def who_wrote(
    *, username: str | None, agent_label: str, run_id, change_id, undo_id, undo_kinds=None, run_names=None
) -> str:
    """The writer of a history row in plain words: an agent (approved by whom), an undo, or a person.

    `undo_kinds` (undo id → its kind's name) says a redo or a restore for what it is;
    `run_names` (run id → the agent's name for it) names the run as its page does.
    """
    if undo_id:
        return f"{undo_name(undo_id, undo_kinds or {})} by {username or 'someone'}"
    if agent_label or change_id:
        text = f"agent {agent_label or '?'}"
        if run_id or change_id:
            text += f" (run {(run_names or {}).get(run_id, run_id)}, change #{change_id})"
        return text + (f", approved by {username}" if username else "")
    return username or "someone (no user recorded)"


@dataclass(frozen=True)
class Writer:
    history_id: int
    who: str
    when: dt.datetime
    values: tuple  # tracked values, in the order of the record type's table


def describe_writers(rtype: registry.RecordType, history_ids) -> dict[int, Writer]:
    """Who wrote each of these history rows, and when, in one query."""
    if not history_ids:
        return {}
    tbl = table(rtype)
    names = [f.attname for f in tbl.tracked]
    rows = rtype.model.history.filter(history_id__in=list(history_ids)).values(
        "history_id",
        "history_date",
        "history_user__username",
        "cs_agent_label",
        "cs_run_id",
        "cs_change_id",
        "cs_undo_id",
        *names,
    )
    rows = list(rows)
    kinds = undo_kinds(row["cs_undo_id"] for row in rows)
    runs = host.run_names(row["cs_run_id"] for row in rows)
    return {
        row["history_id"]: Writer(
            history_id=row["history_id"],
            who=who_wrote(
                username=row["history_user__username"],
                agent_label=row["cs_agent_label"],
                run_id=row["cs_run_id"],
                change_id=row["cs_change_id"],
                undo_id=row["cs_undo_id"],
                undo_kinds=kinds,
                run_names=runs,
            ),
            when=row["history_date"],
            values=tuple(row[n] for n in names),
        )
        for row in rows
    }


@dataclass(frozen=True)
class Write:
    """What one change wrote to one record: its governed fields before and after (JSON values)."""

    record_id: int
    before: dict  # empty when the change created the record
    after: dict


def writes_of_changes(rtype: registry.RecordType, change_ids) -> dict[int, dict[int, Write]]:
    """Per change id, per record id: what the change's tagged history row says it wrote, in two queries.

    The row before it (the record's previous snapshot) gives the values it was written over, so a
    change applied long ago still reads as "from what it was to what it set", whatever the record is now.
    """
    ids = {i for i in change_ids if i}
    if not ids:
        return {}
    history = rtype.model.history
    attnames = {name: f.model_field.attname for name, f in rtype.fields.items()}
    previous = Subquery(
        history.filter(id=OuterRef("id"), history_id__lt=OuterRef("history_id"))
        .order_by("-history_id")
        .values("history_id")[:1]
    )
    rows = list(
        history.filter(cs_change_id__in=ids)
        .annotate(previous_id=previous)
        .values("history_id", "id", "cs_change_id", "previous_id", *attnames.values())
    )
    before_rows = {
        row["history_id"]: row
        for row in history.filter(history_id__in=[r["previous_id"] for r in rows if r["previous_id"]]).values(
            "history_id", *attnames.values()
        )
    }

    def values(row) -> dict:
        return {name: registry.to_json(row[attname]) for name, attname in attnames.items()} if row else {}

    found: dict[int, dict[int, Write]] = {}
    for row in rows:
        write = Write(row["id"], values(before_rows.get(row["previous_id"])), values(row))
        found.setdefault(row["cs_change_id"], {})[row["id"]] = write
    return found


# A record's timeline ----------------------------------------------------------------


@dataclass
class Version:
    """One snapshot of a record, with who made it and what it changed."""

    history_id: int
    number: int
    date: dt.datetime
    kind: str
    who: str
    reason: str
    diff: list[str] = field(default_factory=list)
    change_url: str = ""
    run_url: str = ""
    undo_url: str = ""
    undo_label: str = ""  # "redo #7": the undo that wrote it, named for its kind
    change_id: int | None = None
    run_id: int | None = None
    undo_id: int | None = None
    is_latest: bool = False


def timeline(rtype: registry.RecordType, record_id: int, *, page: int | str = 1, per_page: int = 50) -> Page:
    """The record's versions, newest first, each with its plain-language diff against the one before."""
    tbl = table(rtype)
    names = [f.attname for f in tbl.tracked]
    history = rtype.model.history.filter(id=record_id).order_by("-history_id")
    paginator = Paginator(history.values_list("history_id", flat=True), per_page)
    result = paginator.get_page(page)
    ids = list(result.object_list)
    if not ids:
        result.object_list = []
        return result
    # One more row than the page: the version before the oldest one shown, to diff against.
    rows = list(
        history.filter(history_id__lte=ids[0]).values(
            "history_id",
            "history_date",
            "history_type",
            "history_change_reason",
            "history_user__username",
            "cs_agent_label",
            "cs_run_id",
            "cs_change_id",
            "cs_undo_id",
            *names,
        )[: len(ids) + 1]
    )
    latest_id = history.values_list("history_id", flat=True).first()
    count = paginator.count
    first_number = count - (result.start_index() - 1)
    kinds = undo_kinds(row["cs_undo_id"] for row in rows)
    runs = host.run_names(row["cs_run_id"] for row in rows)
    versions = []
    for i, row in enumerate(rows[: len(ids)]):
        values = tuple(row[n] for n in names)
        previous = tuple(rows[i + 1][n] for n in names) if i + 1 < len(rows) else None
        who, reason = _writer_and_reason(row, kinds, runs)
        versions.append(
            Version(
                history_id=row["history_id"],
                number=first_number - i,
                date=row["history_date"],
                kind=row["history_type"],
                who=who,
                reason=reason,
                diff=diff(tbl.slots, previous, values),
                change_id=row["cs_change_id"],
                run_id=row["cs_run_id"],
                undo_id=row["cs_undo_id"],
                change_url=host.url_for("change", row["cs_change_id"]),
                run_url=host.url_for("run", row["cs_run_id"]),
                undo_url=reverse("undo_detail", args=[row["cs_undo_id"]]) if row["cs_undo_id"] else "",
                undo_label=undo_name(row["cs_undo_id"], kinds) if row["cs_undo_id"] else "",
                is_latest=row["history_id"] == latest_id,
            )
        )
    result.object_list = versions
    return result


def _writer_and_reason(row: dict, kinds: dict[int, str], runs: dict) -> tuple[str, str]:
    """Who wrote a version, and the reason beside it. A version written outside Countersign
    with no user says what is known: its writer's own reason ("created by the demo seed"),
    else that nobody was recorded."""
    reason = row["history_change_reason"] or ""
    tagged = row["history_user__username"] or row["cs_agent_label"] or row["cs_change_id"] or row["cs_undo_id"]
    if not tagged:
        if reason:
            return reason, ""
        verb = "created" if row["history_type"] == "+" else "changed"
        return f"{verb} outside Countersign, with no user recorded", ""
    who = who_wrote(
        username=row["history_user__username"],
        agent_label=row["cs_agent_label"],
        run_id=row["cs_run_id"],
        change_id=row["cs_change_id"],
        undo_id=row["cs_undo_id"],
        undo_kinds=kinds,
        run_names=runs,
    )
    return who, reason


def undo_name(undo_id: int, kinds: dict[int, str]) -> str:
    """'redo #7': an undo named for its kind (from `undo_kinds`)."""
    return f"{kinds.get(undo_id, 'undo')} #{undo_id}"


def undo_kinds(undo_ids) -> dict[int, str]:
    """Undo id → the name of its kind (undo, redo, restore), in one query."""
    ids = {i for i in undo_ids if i}
    if not ids:
        return {}
    return {pk: Undo.Kind(kind).label for pk, kind in Undo.objects.filter(pk__in=ids).values_list("pk", "kind")}


def diff(slots: list[Slot], previous: tuple | None, values: tuple) -> list[str]:
    """What changed from `previous` to `values`, one plain line per slot."""
    lines = []
    for slot in slots:
        now = slot.get(values)
        if previous is None:
            if slot.name != DELETED:
                lines.append(f"{slot.label}: {display_slot(slot, now)}")
            elif now[0] is not None:
                lines.append(f"created deleted ({display_slot(slot, now)})")
            continue
        before = slot.get(previous)
        if before == now:
            continue
        if slot.name == DELETED:
            lines.append("restored (no longer deleted)" if now[0] is None else display_slot(slot, now))
        else:
            lines.append(f"{slot.label}: {display_slot(slot, before)} → {display_slot(slot, now)}")
    return lines or ["no governed field changed"]


def undos_for_run(run_id: int, *, limit: int = 5) -> list[Undo]:
    """The latest undos (and their redos) of a run or of changes in it."""
    undo_ids = list(Undo.objects.filter(run_id=run_id).values_list("id", flat=True)[:limit])
    redos = Undo.objects.filter(target_id__in=undo_ids)
    return list((Undo.objects.filter(id__in=undo_ids) | redos).select_related("target").order_by("-created_at")[:limit])


# Scopes and undos ---------------------------------------------------------------------


@dataclass(frozen=True)
class Extent:
    """How far a scope reaches: record types, records and changes."""

    record_types: list[str]
    records: int
    changes: int


def extent(scope: Scope) -> Extent:
    """Count what the scope touches, one aggregate query per record type."""
    record_types, records, changes = [], 0, 0
    for rtype in registry.all_record_types():
        q = scope.history_q(rtype)
        if q is None:
            continue
        found = rtype.model.history.filter(q).aggregate(
            records=Count("id", distinct=True), changes=Count("cs_change_id", distinct=True)
        )
        if found["records"]:
            record_types.append(rtype.name)
            records += found["records"]
            changes += found["changes"]
    return Extent(record_types, records, changes)


def redo_targets() -> dict[int, int]:
    """Every redo (an undo of an undo) → the undo it reverses."""
    return dict(Undo.objects.filter(target__isnull=False).values_list("id", "target_id"))


class UndoneChanges:
    """What undos did to changes: which changes each took back or put back, and which stay
    taken back. Read from the undos in one query on first use: planning asks only for a
    record that an undo wrote, so a first undo of a run never pays for it."""

    @cached_property
    def _read(self) -> tuple[dict[int, frozenset[int]], frozenset[int]]:
        rows = list(Undo.objects.order_by("id").values_list("id", "target_id", "change_ids_done"))
        target = {pk: target_id for pk, target_id, _ in rows}
        undoes: dict[int, bool] = {}

        def takes_back(pk: int) -> bool:
            # An undo takes changes back, its redo puts them back, a redo of that takes them back again.
            if pk not in undoes:
                undoes[pk] = target.get(pk) is None or not takes_back(target[pk])
            return undoes[pk]

        by_undo: dict[int, frozenset[int]] = {}
        taken_back: set[int] = set()
        for pk, _, done in rows:
            if not done:
                continue
            by_undo[pk] = frozenset(done)
            if takes_back(pk):
                taken_back.update(done)
            else:
                taken_back.difference_update(done)
        return by_undo, frozenset(taken_back)

    @property
    def by_undo(self) -> dict[int, frozenset[int]]:
        """Undo id → the changes it took back (a redo: put back)."""
        return self._read[0]

    @property
    def taken_back(self) -> frozenset[int]:
        """Changes the newest undo or redo to touch them took back."""
        return self._read[1]

    def touched(self, undo_id: int | None, change_ids: set[int]) -> bool:
        """True when that undo took back (or put back) one of these changes."""
        done = self.by_undo.get(undo_id) if undo_id else None
        return bool(done) and not done.isdisjoint(change_ids)


def chain_of(scope_key: str, *, undo_id: int | None = None) -> frozenset[int]:
    """Undos whose rows count as the scope's own: earlier undos of the same scope and their redos."""
    ids = set(Undo.objects.filter(scope_key=scope_key).values_list("id", flat=True))
    if undo_id is not None:
        ids.add(undo_id)
    frontier = set(ids)
    while frontier:
        keys = [f"undo:{i}" for i in frontier]
        frontier = set(Undo.objects.filter(scope_key__in=keys).values_list("id", flat=True)) - ids
        ids |= frontier
    return frozenset(ids)
