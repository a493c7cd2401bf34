"""The automatic pause (circuit breaker): a workflow whose recent outcomes go bad pauses itself.

Per workflow with an enabled `AutoPause` row, five signals, each read from what is already
stored (the audit trail's events, the changes' `applied_at`), nothing counted on the side:

- rejections: of the latest `sample_size` review decisions (events moving a change to approved or
  rejected; an approval of several that moves nothing is not a decision) in the window, the share
  rejected;
- failures: of the latest `sample_size` apply outcomes (moves from applying to applied, failed or
  conflict) in the window, the share failed or conflict;
- undos: of the latest `sample_size` changes applied in the window, the share now undone;
- burst: the changes applied in the last 60 seconds, against `max_applied_per_minute`;
- same value: per field, the records an update set to one value within `same_value_minutes`,
  against `max_same_value` (a bot marking hundreds of tickets resolved in ten minutes).

A rate needs `min_sample` outcomes and trips at its threshold (>=); a count trips above it (>).
Each window starts at the workflow's last resume if that is later: what paused it once does not
pause it again the moment a person resumes it.

Cost, per check (bench/auto_pause measures it): a rate is one query per event kind, each a
backward range of the index event_workflow_kind (workflow, kind, created_at) cut at
`sample_size` rows; undos and burst one range of change_workflow_applied (workflow, applied_at);
same value one GROUP BY per field the apply batch set, over the latest (at most SAME_VALUE_SCAN)
changes applied in its window.

When it is checked, once per batch and only for the signals the event can move:
- after an apply batch (`apply.services.apply_changes`, once per call): failures, burst, same value;
- after review decisions (one, or a bulk decision once): rejections;
- after an undo finishes (`undoing.receivers`): undos.
Never at intake: a proposal moves none of the signals (what auto-applies moves them when it is
applied, in its apply batch), so intake pays nothing for the automatic pause.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import Case, F, Func, IntegerField, Sum, When
from django.db.models.fields.json import KT
from django.utils import timezone

from undo import registry

from ..lifecycle import Actor
from ..models import AutoPause, Change, Event, Workflow

logger = logging.getLogger(__name__)
S = Change.Status
K = Event.Kind

REJECTIONS = "rejections"
FAILURES = "failures"
UNDOS = "undos"
BURST = "burst"
SAME_VALUE = "same_value"
SIGNALS = (REJECTIONS, FAILURES, UNDOS, BURST, SAME_VALUE)
# The signals each kind of event can move: only these are checked after it.
AFTER_APPLY = (FAILURES, BURST, SAME_VALUE)
AFTER_REVIEW = (REJECTIONS,)
AFTER_UNDO = (UNDOS,)

ACTOR = Actor.system("automatic pause")
BURST_SECONDS = 60
# The page's reading of "same value" looks at the fields of this many latest applied changes.
_FIELDS_SAMPLE = 200
# Same value reads at most this many changes, the latest applied in its window: exact while the
# window holds fewer (3,000 in 10 minutes is the default burst ceiling, 300 a minute, kept for 10
# minutes), and past it a spree still shows among the latest. Measured by bench/auto_pause:
# ~1.5 µs a change on SQLite, so ~5 ms at most, against ~600 ms to apply a batch of 200.
SAME_VALUE_SCAN = 3_000


@dataclass(frozen=True)
class Reading:
    """One signal as it reads now: `label` names it, `reads` says what it measures now and
    `threshold` what would pause, in plain words. `tripped`: it crossed its threshold (whether the
    automatic pause is on is the AutoPause row's `enabled`); `reason` is then the pause's reason."""

    signal: str
    label: str
    reads: str
    threshold: str
    tripped: bool = False
    reason: str = ""
    numbers: dict = field(default_factory=dict)


# Checking -----------------------------------------------------------------------


def check_after_commit(workflow_ids: Iterable[int], signals: tuple[str, ...], *, fields=None) -> None:
    """Check `signals` of these workflows once the caller's transaction commits (at once outside one).

    After the commit, so the check reads the outcomes it is about and its own pause is a
    transaction of its own: a check can neither roll back nor delay the decision or the apply
    that moved the numbers. `fields` (`fields_of`) are what an apply batch set.
    """
    ids = sorted(set(workflow_ids))
    if ids:
        # Only those with an automatic pause on: for the others nothing waits for the commit.
        ids = list(AutoPause.objects.filter(workflow_id__in=ids, enabled=True).values_list("workflow_id", flat=True))
    if ids:
        transaction.on_commit(partial(_check_each, sorted(ids), signals, fields or {}))


def _check_each(workflow_ids: list[int], signals: tuple[str, ...], fields: dict) -> bool:
    """Check each workflow; whether any was paused."""
    paused = False
    for workflow_id in workflow_ids:
        try:
            paused = check(workflow_id, signals, fields=fields) is not None or paused
        except Exception:
            # Logged, not raised: what moved the numbers has committed and stays right, and raising
            # here would report a committed review or apply as failed (the outbox would run the
            # apply task again, with nothing left to claim, so nothing left to check either). The
            # check keeps no state: the next decision, batch or undo reads the same window again.
            logger.exception("automatic pause: could not check workflow %s (%s)", workflow_id, ", ".join(signals))
    return paused


def check(workflow_id: int, signals: Iterable[str] = SIGNALS, *, fields: dict | None = None) -> Reading | None:
    """Read `signals` of the workflow and pause it at the first that crossed its threshold;
    returns that reading, or None (no automatic pause, off, already paused, nothing crossed)."""
    config = AutoPause.objects.select_related("workflow").filter(workflow_id=workflow_id, enabled=True).first()
    if config is None or config.workflow.is_paused:
        return None
    window = Window.of(config)
    for signal in signals:
        reading = _READERS[signal](config, window, fields)
        if reading.tripped:
            # Imported here: the workflows' services import apply, whose batches call this module.
            from .services import pause_workflow

            pause_workflow(
                workflow=config.workflow,
                actor=ACTOR,
                reason=reading.reason,
                details={"signal": reading.signal, "numbers": reading.numbers},
            )
            return reading
    return None


class Tally:
    """Burst and same value, counted on while an apply batch runs, so that a runaway run pauses
    in the middle of its batch and not after it (a batch of 200 spam tags would otherwise all be
    written before the first check). The window's counts are read once, before the batch (one
    count, and one GROUP BY per field and values the batch sets); each change applied adds to them
    in memory. When a count crosses its ceiling, the signal is read again from the database (the
    check's own words and numbers) and the workflow paused: the batch's next changes are then held
    by the apply's own check of the state. No query per change."""

    # After a crossing the database did not confirm (a resume moved the window, say), how many
    # more records before asking it again.
    RECHECK_AFTER = 10

    def __init__(self, configs, burst, same, *, started: datetime, untallied: set[int]):
        self.configs: dict[int, AutoPause] = configs
        self.burst: dict[int, int] = burst  # workflow id -> changes applied in the last minute
        self.same: dict[tuple, int] = same  # (workflow id, record type, field, value) -> records set so
        self.next_check: dict[tuple, int] = {}
        self.started = started  # before the window was read
        self.untallied = untallied  # workflows whose batch set values other than text
        self.mine: dict[int, int] = {}  # workflow id -> changes this batch applied

    @classmethod
    def before(cls, batch: list[Change]) -> Tally | None:
        """The counts for a batch about to be applied; None when no workflow of it has a ceiling on."""
        ids = {c.workflow_id for c in batch}
        configs = {
            c.workflow_id: c
            for c in AutoPause.objects.filter(workflow_id__in=ids, enabled=True)
            if c.max_applied_per_minute is not None or c.max_same_value is not None
        }
        if not configs:
            return None
        started = timezone.now()
        burst: dict[int, int] = {}
        same: dict[tuple, int] = {}
        untallied: set[int] = set()
        for workflow_id, config in configs.items():
            window = Window.of(config)
            if config.max_applied_per_minute is not None:
                since = window.since(seconds=BURST_SECONDS)
                burst[workflow_id] = Change.objects.filter(workflow_id=workflow_id, applied_at__gte=since).count()
            if config.max_same_value is None:
                continue
            fields = fields_of(c for c in batch if c.workflow_id == workflow_id)
            applied = _recent_updates(config, window)
            for record_type, names in fields.items():
                for name, values in names.items():
                    if values is None:
                        untallied.add(workflow_id)  # not text: left to the check after the batch
                        continue
                    rows = (
                        _set_to(applied.filter(record_type=record_type), name)
                        .filter(set_to__in=sorted(values))
                        .values("set_to")
                        .annotate(records=Sum(_ArrayLength(F("applied_record_ids"))))
                        .values_list("set_to", "records")
                    )
                    counts = dict(rows)
                    for value in values:
                        same[(workflow_id, record_type, name, value)] = int(counts.get(value) or 0)
        return cls(configs, burst, same, started=started, untallied=untallied)

    def applied(self, change: Change) -> None:
        """Count a change just applied (committed); pause its workflow if a ceiling is crossed."""
        config = self.configs.get(change.workflow_id)
        if config is None:
            return
        self.mine[change.workflow_id] = self.mine.get(change.workflow_id, 0) + 1
        crossed = []
        if change.workflow_id in self.burst:
            self.burst[change.workflow_id] += 1
            if self._crosses((change.workflow_id,), self.burst[change.workflow_id], config.max_applied_per_minute):
                crossed.append(BURST)
        if config.max_same_value is not None and change.operation == Change.Operation.UPDATE:
            records = len(change.applied_record_ids or change.record_ids)
            for name, value in change.values_to_apply().items():
                key = (change.workflow_id, change.record_type, name, value)
                if isinstance(value, str) and key in self.same:
                    self.same[key] += records
                    if self._crosses(key, self.same[key], config.max_same_value):
                        crossed.append(SAME_VALUE)
        if crossed and _check_each([change.workflow_id], tuple(dict.fromkeys(crossed)), fields_of([change])):
            self.configs.pop(change.workflow_id)  # paused: nothing more of it is applied in this batch

    def still_to_check(self, workflow_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """After the batch, the signals each workflow still needs read from the database: failures
        always; burst and same value only where this batch's counts may be short of the truth —
        another worker applied changes of the workflow meanwhile (one count on the index), or the
        batch set values other than text — or where nothing was counted at all."""
        todo = {}
        for workflow_id in sorted(set(workflow_ids)):
            if workflow_id not in self.configs:
                todo[workflow_id] = AFTER_APPLY
                continue
            applied = Change.objects.filter(workflow_id=workflow_id, applied_at__gte=self.started).count()
            others = applied > self.mine.get(workflow_id, 0)
            todo[workflow_id] = AFTER_APPLY if others or workflow_id in self.untallied else (FAILURES,)
        return todo

    def _crosses(self, key: tuple, count: int, ceiling: int | None) -> bool:
        if ceiling is None or count <= ceiling or count < self.next_check.get(key, 0):
            return False
        self.next_check[key] = count + self.RECHECK_AFTER
        return True


def readings(workflow: Workflow) -> list[Reading]:
    """Every signal as it reads now, for the workflow's page; [] when it has no automatic pause."""
    config = AutoPause.objects.filter(workflow=workflow).first()
    if config is None:
        return []
    config.workflow = workflow
    window = Window.of(config)
    return [_READERS[signal](config, window, None) for signal in SIGNALS]


@dataclass(frozen=True)
class Window:
    now: datetime
    # The workflow's last resume, if any: the windows never reach before it.
    resumed_at: datetime | None

    @classmethod
    def of(cls, config: AutoPause) -> Window:
        resumed = (
            Event.objects.filter(workflow_id=config.workflow_id, kind=K.RESUMED)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return cls(now=timezone.now(), resumed_at=resumed)

    def since(self, *, minutes: float = 0, seconds: float = 0) -> datetime:
        start = self.now - timedelta(minutes=minutes, seconds=seconds)
        return max(start, self.resumed_at) if self.resumed_at else start

    def words(self, minutes: int) -> str:
        """ "in the last 60 minutes" or "since it was resumed" """
        if self.resumed_at and self.resumed_at > self.now - timedelta(minutes=minutes):
            return "since it was resumed"
        return f"in the last {_n(minutes, 'minute')}"


# The signals ------------------------------------------------------------------------


def _rejections(config: AutoPause, window: Window, fields) -> Reading:
    label = "Rejected in review"
    if config.max_rejection_pct is None:
        return _off(REJECTIONS, label)
    # A decision is a move: an approval of several that leaves the change waiting has no to_status.
    latest = _latest(config, window, {K.APPROVED: {"to_status": S.APPROVED}, K.REJECTED: {"to_status": S.REJECTED}})
    bad = sum(1 for kind in latest if kind == K.REJECTED)
    return _rate(
        REJECTIONS,
        label,
        config,
        window,
        bad=bad,
        total=len(latest),
        threshold=config.max_rejection_pct,
        what="reviewed changes",
        were="were rejected",
    )


def _failures(config: AutoPause, window: Window, fields) -> Reading:
    label = "Failed or conflicted when applied"
    if config.max_failure_pct is None:
        return _off(FAILURES, label)
    # From applying only: FAILED is also the kind of an undo that failed.
    applying = {"from_status": S.APPLYING}
    latest = _latest(config, window, {K.APPLIED: applying, K.FAILED: applying, K.CONFLICT: applying})
    failed = sum(1 for kind in latest if kind == K.FAILED)
    conflicts = sum(1 for kind in latest if kind == K.CONFLICT)
    return _rate(
        FAILURES,
        label,
        config,
        window,
        bad=failed + conflicts,
        total=len(latest),
        threshold=config.max_failure_pct,
        what="applies",
        were=f"failed or hit a conflict ({failed} failed, {_n(conflicts, 'conflict')})",
        extra={"failed": failed, "conflicts": conflicts},
    )


def _undos(config: AutoPause, window: Window, fields) -> Reading:
    label = "Undone after being applied"
    if config.max_undo_pct is None:
        return _off(UNDOS, label)
    statuses = list(
        Change.objects.filter(
            workflow_id=config.workflow_id, applied_at__gte=window.since(minutes=config.window_minutes)
        )
        .order_by("-applied_at")
        .values_list("status", flat=True)[: config.sample_size]
    )
    return _rate(
        UNDOS,
        label,
        config,
        window,
        bad=statuses.count(S.UNDONE),
        total=len(statuses),
        threshold=config.max_undo_pct,
        what="applied changes",
        were="were undone",
    )


def _burst(config: AutoPause, window: Window, fields) -> Reading:
    label = "Applied in one minute"
    ceiling = config.max_applied_per_minute
    if ceiling is None:
        return _off(BURST, label)
    since = window.since(seconds=BURST_SECONDS)
    # A count over the index (workflow, applied_at): one entry per change applied in the minute.
    applied = Change.objects.filter(workflow_id=config.workflow_id, applied_at__gte=since).count()
    reads = f"{_n(applied, 'change')} applied in the last minute"
    reason = f"paused automatically: {reads.replace(' applied', ' were applied')}, more than {ceiling}"
    return Reading(
        BURST,
        label,
        reads,
        f"more than {ceiling} a minute",
        tripped=applied > ceiling,
        reason=reason,
        numbers={"applied": applied, "seconds": BURST_SECONDS, "threshold": ceiling},
    )


def _same_value(config: AutoPause, window: Window, fields: dict | None) -> Reading:
    label = "Same value on many records"
    ceiling = config.max_same_value
    if ceiling is None:
        return _off(SAME_VALUE, label)
    minutes = config.same_value_minutes
    applied = _recent_updates(config, window)
    if fields is None:
        fields = _fields_of(applied[:_FIELDS_SAMPLE])
    top = None  # (records, record type, field, value)
    for record_type, names in sorted(fields.items()):
        for name, values in sorted(names.items()):
            found = _most_set(applied.filter(record_type=record_type), name, values)
            if found is not None and (top is None or found[0] > top[0]):
                top = (found[0], record_type, name, found[1])
    threshold = f"more than {ceiling} records within {_n(minutes, 'minute')}"
    if top is None:
        return Reading(SAME_VALUE, label, f"nothing updated {window.words(minutes)}", threshold)
    records, record_type, name, value = top
    field_label, value_words, plural = _words(record_type, name, value, records)
    reads = f"'{field_label}' was set to {value_words} on {records} {plural} {window.words(minutes)}"
    return Reading(
        SAME_VALUE,
        label,
        reads,
        threshold,
        tripped=records > ceiling,
        reason=f"paused automatically: {reads}, more than {ceiling}",
        numbers={
            "record_type": record_type,
            "field": name,
            "value": value,
            "records": records,
            "minutes": minutes,
            "threshold": ceiling,
        },
    )


_READERS = {REJECTIONS: _rejections, FAILURES: _failures, UNDOS: _undos, BURST: _burst, SAME_VALUE: _same_value}


# Reading the numbers ----------------------------------------------------------------


def _latest(config: AutoPause, window: Window, kinds: dict[str, dict]) -> list[str]:
    """The kinds of the workflow's latest `sample_size` events of these kinds (each with its
    filter) in the window, newest first. One query per kind: each is a backward range of the index
    (workflow, kind, created_at) stopped after sample_size rows; one query for all kinds
    would sort every event of the window."""
    since = window.since(minutes=config.window_minutes)
    rows: list[tuple[datetime, int, str]] = []
    for kind, extra in kinds.items():
        rows += (
            Event.objects.filter(workflow_id=config.workflow_id, kind=kind, created_at__gte=since, **extra)
            .order_by("-created_at", "-id")
            .values_list("created_at", "id", "kind")[: config.sample_size]
        )
    rows.sort(reverse=True)
    return [kind for _, _, kind in rows[: config.sample_size]]


class _ArrayLength(Func):
    """How many items a JSON array holds (the records a change wrote)."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


def _recent_updates(config: AutoPause, window: Window):
    """The updates among the latest SAME_VALUE_SCAN changes applied in the same-value window, found
    on the index (workflow, applied_at): the cost stays bounded however fast the workflow applies."""
    since = window.since(minutes=config.same_value_minutes)
    latest = (
        Change.objects.filter(workflow_id=config.workflow_id, applied_at__gte=since)
        .order_by("-applied_at")
        .values("pk")[:SAME_VALUE_SCAN]
    )
    return Change.objects.filter(pk__in=latest, operation=Change.Operation.UPDATE).order_by()


def _set_to(applied, name: str):
    """`applied` with `set_to`: the value each change applied to field `name` (a reviewer's
    correction when there is one)."""
    value = Case(When(edited_values__isnull=True, then=KT(f"values__{name}")), default=KT(f"edited_values__{name}"))
    return applied.annotate(set_to=value)


def _most_set(applied, name: str, values: set[str] | None) -> tuple[int, object] | None:
    """(records, value): the value the most records got in field `name` among `applied`, in one
    GROUP BY (a reviewer's correction is what was applied), among `values` if given (the batch's:
    only they can have grown). A record set twice counts twice: it was written twice."""
    among = _set_to(applied, name)
    among = among.filter(set_to__in=sorted(values)) if values else among.filter(set_to__isnull=False)
    row = (
        among.values("set_to")
        .annotate(records=Sum(_ArrayLength(F("applied_record_ids"))))
        .order_by("-records")
        .values_list("records", "set_to")
        .first()
    )
    return (int(row[0] or 0), row[1]) if row else None


def _fields_of(changes) -> dict[str, dict[str, None]]:
    """The fields `changes` set, any value (None: no filter on values)."""
    fields: dict[str, dict[str, None]] = {}
    for record_type, values, edited in changes.values_list("record_type", "values", "edited_values"):
        fields.setdefault(record_type, {}).update(dict.fromkeys(edited if edited is not None else values))
    return fields


def fields_of(changes: Iterable[Change]) -> dict[str, dict[str, set[str] | None]]:
    """{record type: {field: the values set}} of an apply batch's updates, for the same-value check:
    only those values can have grown. Text values are matched in SQL as they are; a field also set
    to a number, yes/no or nothing is grouped over all its values (None)."""
    fields: dict[str, dict[str, set[str] | None]] = {}
    for change in changes:
        if change.operation != Change.Operation.UPDATE:
            continue
        names = fields.setdefault(change.record_type, {})
        for name, value in change.values_to_apply().items():
            if isinstance(value, str) and names.get(name, set()) is not None:
                names.setdefault(name, set()).add(value)
            else:
                names[name] = None
    return fields


# Words -------------------------------------------------------------------------------


def _rate(signal, label, config, window, *, bad, total, threshold, what, were, extra=None) -> Reading:
    minimum = max(config.min_sample, 1)
    words = f"{threshold}% or more, once {minimum} {what} {'is' if minimum == 1 else 'are'} counted"
    numbers = {"bad": bad, "total": total, "threshold_pct": threshold, "min_sample": minimum, **(extra or {})}
    if total < minimum:
        reads = f"{total} {what} {window.words(config.window_minutes)}; a rate needs {minimum}"
        return Reading(signal, label, reads, words, numbers=numbers)
    pct = round(100 * bad / total)
    numbers["pct"] = pct
    reads = f"{bad} of the last {total} {what} {were} — {pct}%"
    return Reading(
        signal,
        label,
        reads,
        words,
        # In whole numbers, so 6 of 20 is exactly 30%: trips at the threshold, not one below it.
        tripped=bad * 100 >= threshold * total,
        reason=f"paused automatically: {reads}, threshold {threshold}%",
        numbers=numbers,
    )


def _off(signal: str, label: str) -> Reading:
    return Reading(signal, label, "not checked", "off")


def _words(record_type: str, name: str, value, records: int) -> tuple[str, str, str]:
    """The field's label, the value as people read it and the record type's plural, from its registration."""
    try:
        rtype = registry.get(record_type)
    except KeyError:
        return name, str(value), f"{record_type} records"
    label = rtype.fields[name].label if name in rtype.fields else name
    shown = rtype.display(name, value) if name in rtype.fields else str(value)
    return label[:1].upper() + label[1:], shown, rtype.label if records == 1 else rtype.plural


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
