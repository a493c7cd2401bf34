"""Property-based (stateful) tests: random interleavings of agent changes, people's edits,
soft deletes, undos and redos over a few records.

The test keeps its own log of every write (who wrote which values, read back after each
step) and computes from it, independently of undo's engine, what each undo must leave:

- every field the scope changed that nobody outside it changed later is back to its
  value before the scope (someone else's edit in the middle of the scope included);
- no later edit by someone else is lost (those fields keep their current value);
- undoing the same scope twice writes nothing the second time, and nothing either when
  someone wrote the same fields in between: what an undo took back is already back, and
  what came after is someone else's (whatever the owner forces);
- a change undone already (by this scope's undo or another's) is not undone again, and
  an undo or redo of the scope's changes counts as the scope's own history;
- undo then redo leaves every record exactly as if it was never undone;
- the owner's choices per record hold: a skipped record is left exactly as it is, a
  forced one has its later edits by others replaced too;
- a change goes back whole or not at all (when part of it stays, all of it stays), and
  the undo reports exactly the changes it took back;
- an undo's write and its redo's write that puts a field back as it was cancel out: they
  are nobody's edit, so never a conflict for an overlapping scope.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from approvals.models import Change
from demo.models import Ticket
from tests.factories import make_agent, make_customer, make_workflow
from undo import services
from undo.models import Undo
from undo.scopes import NothingToUndo, Scope

from .conftest import apply_run, human_edit

# Few records, fields and values: so runs write the same field twice, people edit what
# agents wrote, and values come back (A → B → A) often.
FIELDS = ("status", "tags")
VALUES = {"status": ["open", "pending", "closed"], "tags": ["", "billing", "refund"]}
SLOTS = (*FIELDS, "deleted")
RECORDS = 2
RUNS = 2

# The owner's choice for each record: the default, force or skip.
choices = st.lists(st.sampled_from(("keep", "force", "skip")), min_size=RECORDS, max_size=RECORDS)
edits = st.sets(st.sampled_from(FIELDS), min_size=1, max_size=2).flatmap(
    lambda names: st.fixed_dictionaries({n: st.sampled_from(VALUES[n]) for n in sorted(names)})
)


def snapshot(ticket_id: int) -> dict:
    t = Ticket.all_objects.get(pk=ticket_id)
    return {"status": t.status, "tags": t.tags, "deleted": (t.deleted_at, t.deleted_by, t.deleted_reason)}


class UndoMachine(RuleBasedStateMachine):
    owner: User
    person: User

    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.workflow = make_workflow("props")
        self.agent = make_agent(self.workflow, name="prop-bot", version="1")[0]
        customer = make_customer()
        self.ids = [Ticket.objects.create(customer=customer, subject=f"t{i}").pk for i in range(RECORDS)]
        # Per record: [(writer, values)], oldest first; the first entry is the creation.
        self.log = {pk: [(("create",), snapshot(pk))] for pk in self.ids}
        self.changes: list[tuple[int, int]] = []  # (change id, run number) of applied changes
        # {"id", "scope" (the test's own name for it), "target", "done" (the changes it took back)}
        self.undos: list[dict] = []
        self.just_undone: tuple[int, dict] | None = None  # an undo nothing happened after, and the state before it

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # Writes by agents and people ----------------------------------------------------------

    @initialize(first=edits, second=edits)
    def a_run_writes_one_record_twice(self, first, second):
        # Start where it gets interesting: run 0 changed record 0 twice (maybe the same field).
        self.agent_changes(0, 0, first)
        self.agent_changes(0, 0, second)

    @rule(run=st.integers(0, RUNS - 1), record=st.integers(0, RECORDS - 1), values=edits)
    def agent_changes(self, run, record, values):
        pk = self.ids[record]
        _, (change,) = apply_run(self.agent, self.workflow, f"run-{run}", [("ticket", "update", [pk], values)])
        self._after_write(pk, ("change", change.pk, run), change)

    @rule(run=st.integers(0, RUNS - 1), record=st.integers(0, RECORDS - 1))
    def agent_soft_deletes(self, run, record):
        pk = self.ids[record]
        _, (change,) = apply_run(self.agent, self.workflow, f"run-{run}", [("ticket", "soft_delete", [pk], {})])
        self._after_write(pk, ("change", change.pk, run), change)

    @rule(record=st.integers(0, RECORDS - 1), values=edits)
    def person_edits(self, record, values):
        pk = self.ids[record]
        human_edit(self.person, Ticket.all_objects.get(pk=pk), **values)
        self._after_write(pk, ("person",))

    @rule(record=st.integers(0, RECORDS - 1))
    def person_deletes_or_restores(self, record):
        pk = self.ids[record]
        from django.utils import timezone

        ticket = Ticket.all_objects.get(pk=pk)
        if ticket.deleted_at is None:
            human_edit(self.person, ticket, deleted_at=timezone.now(), deleted_by="pat", deleted_reason="dup")
        else:
            human_edit(self.person, ticket, deleted_at=None, deleted_by="", deleted_reason="")
        self._after_write(pk, ("person",))

    def _after_write(self, pk, writer, change=None):
        if change is not None:
            if change.status != Change.Status.APPLIED:
                return  # refused (e.g. the record is deleted): nothing was written
            self.changes.append((change.pk, writer[2]))
        values = snapshot(pk)
        if values != self.log[pk][-1][1]:
            self.log[pk].append((writer, values))
        self.just_undone = None

    # Undo and redo ------------------------------------------------------------------------

    @rule(run=st.integers(0, RUNS - 1), choice=choices)
    def undo_a_run(self, run, choice):
        from approvals.models import Run

        found = Run.objects.filter(external_id=f"run-{run}", workflow=self.workflow).first()
        if found is not None:
            self._undo(("run", run), Scope(run_id=found.pk), choice)

    @precondition(lambda self: self.changes)
    @rule(data=st.data(), choice=choices)
    def undo_a_change(self, data, choice):
        change_id, _ = data.draw(st.sampled_from(self.changes))
        self._undo(("change", change_id), Scope(change_ids=(change_id,)), choice)

    @precondition(lambda self: any(u["target"] is None for u in self.undos))
    @rule(data=st.data(), choice=choices)
    def undo_a_scope_again(self, data, choice):
        # Undo, then later writes (a run, a person), then the same scope again: often.
        scope_name, scope = data.draw(
            st.sampled_from([(u["scope"], u["of"]) for u in self.undos if u["target"] is None])
        )
        self._undo(scope_name, scope, choice)

    @precondition(lambda self: self.undos)
    @rule(data=st.data(), choice=choices)
    def redo_an_undo(self, data, choice):
        self._redo(data.draw(st.sampled_from(self.undos))["id"], choice)

    @precondition(lambda self: self.just_undone)
    @rule(choice=choices)
    def redo_the_undo_just_made(self, choice):
        # Often undo then redo at once: a later, overlapping scope then meets both writes.
        self._redo(self.just_undone[0], choice)

    def _redo(self, target: int, choice: list[str]):
        before_target = self.just_undone if self.just_undone and self.just_undone[0] == target else None
        self._undo(("undo", target), Scope(undo_id=target), choice, target=target)
        if before_target is not None and "skip" not in choice:
            # Undo then redo: as if it was never undone.
            assert {pk: snapshot(pk) for pk in self.ids} == before_target[1]

    def _undo(self, scope_name, scope: Scope, choice: list[str], target: int | None = None):
        before = {pk: snapshot(pk) for pk in self.ids}
        keys = {c: [f"ticket:{pk}" for pk, made in zip(self.ids, choice, strict=True) if made == c] for c in choice}
        owner_choices = {"forced": keys.get("force", []), "skipped": keys.get("skip", [])}
        expected, done = self._expected(scope_name, choice)
        try:
            if target is None:
                made = services.request_undo(scope=scope, description=str(scope_name), user=self.owner, **owner_choices)
            else:
                made = services.request_redo(undo=Undo.objects.get(pk=target), user=self.owner, **owner_choices)
        except NothingToUndo:
            return
        made.refresh_from_db()
        assert made.status == Undo.Status.DONE, made.error
        assert set(made.change_ids_done) == done, (scope_name, self.log)
        self.undos.append({"id": made.pk, "scope": scope_name, "of": scope, "target": target, "done": done})
        for pk in self.ids:
            after = snapshot(pk)
            assert after == expected[pk], (pk, scope_name, self.log[pk])
            if after != self.log[pk][-1][1]:
                self.log[pk].append((("undo", made.pk), after))
        written = Ticket.history.filter(cs_undo_id=made.pk)
        assert written.count() == sum(1 for pk in self.ids if snapshot(pk) != before[pk])
        assert all(row.history_user_id == self.owner.pk and row.cs_run_id is None for row in written)

        # Undo twice = undo once: the same scope (and the same choices) again writes nothing.
        again = (
            services.request_undo(scope=scope, description="again", user=self.owner, **owner_choices)
            if target is None
            else services.request_redo(undo=Undo.objects.get(pk=target), user=self.owner, **owner_choices)
        )
        self.undos.append({"id": again.pk, "scope": scope_name, "of": scope, "target": target, "done": set()})
        assert not Ticket.history.filter(cs_undo_id=again.pk).exists() and not again.change_ids_done
        assert {pk: snapshot(pk) for pk in self.ids} == expected
        self.just_undone = (made.pk, before) if target is None else None

    # The reference: what an undo of a scope must leave, from the log alone ---------------

    def _in_scope(self, scope_name, writer) -> bool:
        kind, value = scope_name
        if kind == "run":
            return writer[0] == "change" and writer[2] == value
        if kind == "change":
            return writer[0] == "change" and writer[1] == value
        return writer == ("undo", value)

    def _chain(self, scope_name) -> set[int]:
        """Undos of the same scope, and undos of those (redos), and so on."""
        ids = {u["id"] for u in self.undos if u["scope"] == scope_name}
        while True:
            more = {u["id"] for u in self.undos if u["target"] in ids} - ids
            if not more:
                return ids
            ids |= more

    def _someone_else(self, scope_name, chain: set[int], writer) -> bool:
        """A write neither in the scope nor by one of its own earlier undos and redos."""
        return not self._in_scope(scope_name, writer) and not (writer[0] == "undo" and writer[1] in chain)

    def _undos_of(self, change_ids: set[int]) -> set[int]:
        """Undos and redos that took back (or put back) one of these changes."""
        return {u["id"] for u in self.undos if u["done"] & change_ids}

    def _taken_back(self) -> set[int]:
        """Changes whose newest undo or redo took them back."""
        takes_back = {}
        for u in self.undos:  # oldest first: an undo takes back, its redo puts back, and so on
            takes_back[u["id"]] = u["target"] is None or not takes_back[u["target"]]
        state = set()
        for u in self.undos:
            state = state | u["done"] if takes_back[u["id"]] else state - u["done"]
        return state

    def _expected(self, scope_name, choice: list[str]) -> tuple[dict, set[int]]:
        """The records after undoing the scope with these choices, and the changes it takes back."""
        chain = self._chain(scope_name)
        redo_of = {u["id"]: u["target"] for u in self.undos if u["target"] is not None}
        # The units that go back whole: the scope's changes; for a redo, those its undo took back.
        units = next(u["done"] for u in self.undos if u["id"] == scope_name[1]) if scope_name[0] == "undo" else None
        # For a scope of changes, those undone already are no unit: they are not undone again.
        taken_back = self._taken_back() if units is None else set()
        records = {}
        for (pk, entries), made in zip(self.log.items(), choice, strict=True):
            own_chain = set(chain)
            if units is None:
                own_changes = {w[1] for w, _ in entries if self._in_scope(scope_name, w)}
                own_chain |= self._undos_of(own_changes)
            other = [self._someone_else(scope_name, own_chain, writer) for writer, _ in entries]
            changers = {
                slot: [i for i in range(len(entries)) if i == 0 or entries[i][1][slot] != entries[i - 1][1][slot]]
                for slot in SLOTS
            }
            self._cancel_undo_redo_pairs(entries, other, changers, redo_of)
            decided = {}  # slot → ("back", value) | "kept" | "already"
            for slot in SLOTS:
                own = [i for i in changers[slot] if self._in_scope(scope_name, entries[i][0])]
                if not own:
                    continue
                last = own[-1]
                later = [i for i in changers[slot] if i > last and other[i]]
                before = next(entries[i][1][slot] for i in reversed(changers[slot]) if i < last and other[i])
                # What the scope and its own undos and redos left in it, last.
                left = entries[[i for i in changers[slot] if not other[i]][-1]][1][slot]
                if entries[-1][1][slot] == before or left == before:
                    decided[slot] = "already"
                elif later and made != "force":
                    decided[slot] = "kept"  # a later edit by someone else is kept, unless forced
                else:
                    decided[slot] = ("back", before)
            unit_slots: dict[int, set[str]] = {}
            for i, (writer, values) in enumerate(entries):
                if writer[0] == "change" and (
                    writer[1] in units
                    if units is not None
                    else self._in_scope(scope_name, writer) and writer[1] not in taken_back
                ):
                    unit_slots.setdefault(writer[1], set()).update(
                        s for s in SLOTS if values[s] != entries[i - 1][1][s]
                    )
            left = set(SLOTS) if made == "skip" else {s for s, d in decided.items() if d == "kept"}
            records[pk] = (entries[-1][1], decided, unit_slots, left, made == "skip")

        # A change goes back whole or not at all; holding a field back holds back every change that wrote it.
        stays: set[int] = set()
        pending = [c for _, _, unit_slots, left, _ in records.values() for c, s in unit_slots.items() if s & left]
        while pending:
            change = pending.pop()
            if change in stays:
                continue
            stays.add(change)
            for _, decided, unit_slots, _, skipped in records.values():
                for slot in unit_slots.get(change, ()):
                    if not skipped and isinstance(decided.get(slot), tuple):
                        decided[slot] = "held"
                        pending.extend(c for c, s in unit_slots.items() if slot in s and c not in stays)

        result, done = {}, set()
        for pk, (values, decided, unit_slots, _, skipped) in records.items():
            values = dict(values)
            if not skipped:
                back = {slot: d[1] for slot, d in decided.items() if isinstance(d, tuple)}
                values.update(back)
                done.update(c for c, s in unit_slots.items() if c not in stays and s & back.keys())
            result[pk] = values
        return result, done

    def _cancel_undo_redo_pairs(self, entries, other, changers, redo_of) -> None:
        for j, (writer, _) in enumerate(entries):
            if writer[0] != "undo" or writer[1] not in redo_of or not other[j]:
                continue
            i = next((i for i in range(j - 1, 0, -1) if entries[i][0] == ("undo", redo_of[writer[1]])), None)
            if i is None or not other[i]:
                continue
            for slot, found in changers.items():
                between = any(i < k < j for k in found)
                if i in found and j in found and not between and entries[j][1][slot] == entries[i - 1][1][slot]:
                    found.remove(i)
                    found.remove(j)

    @invariant()
    def the_log_matches_the_records(self):
        for pk in self.ids:
            assert snapshot(pk) == self.log[pk][-1][1]


@pytest.mark.django_db
def test_undo_and_redo_keep_their_promises(support, admin_user):
    UndoMachine.owner = support
    UndoMachine.person = User.objects.create_user("pat")
    UndoMachine.person.groups.add(Group.objects.get_or_create(name="support")[0])
    run_state_machine_as_test(
        UndoMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            database=None,
        ),
    )
