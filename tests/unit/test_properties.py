"""apply() against a small reference model of the spec, on random event sequences.

The model restates the rules on its own, in the simplest terms: a dict of order id to status,
total, date, items and contact. Hypothesis drives both with the same events and compares
decisions, final states and the RFM feed a consumer would fold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.contacts import Lookup
from processor.errors import Rejected
from processor.events import parse_event
from processor.orders import Order, RfmRecord, Rules, Transition, apply
from processor.settings import MismatchPolicy

from .builders import item, match, no_match, raw_event, source

ORDER_IDS = ("o1", "o2")
STATUSES = ("INITIALIZED", "IN_PROGRESS", "DELIVERED", "CANCELLED", "ABANDONED_SHOPPING_CART")
DATES = ("2024-01-01T00:00:00", "2024-02-29T12:30:00")
CONTACTS: dict[str, Lookup] = {"A": match("c-A"), "B": match("c-B"), "none": None}
NO_MATCH = "nomatch"

#: Item lists by name, with what they add up to; "10", "10.0" and "10.00" all match "ten".
ITEMS: dict[str, tuple[list[dict[str, Any]], Decimal]] = {
    "ten": ([item(cost="5.00", quantity=2)], Decimal("10")),
    "two": ([item(cost="0.10", quantity=3), item(cost="7.20", quantity="1")], Decimal("7.50")),
    "empty": ([], Decimal(0)),
}

amounts = st.one_of(
    st.sampled_from(["0", "10", "10.0", "10.00", "7.5", "7.50"]),
    st.decimals(min_value=0, max_value=1000, places=2).map(str),
)


@dataclass(frozen=True)
class Step:
    kind: str
    order_id: str
    status: str | None
    total: str | None
    date: str | None
    items: str | None
    contact: str

    def event_bytes(self) -> bytes:
        params: dict[str, Any] = {"externalOrderId": self.order_id}
        given = {"totalCost": self.total, "status": self.status, "date": self.date}
        params.update({name: value for name, value in given.items() if value is not None})
        if self.items is not None:
            params["items"] = ITEMS[self.items][0]
        return raw_event(self.kind, **params)

    def lookup(self) -> Lookup:
        return no_match() if self.contact == NO_MATCH else CONTACTS[self.contact]


@st.composite
def steps(draw: st.DrawFn) -> Step:
    kind = draw(
        st.sampled_from(
            ["orderCreated", "orderUpdated", "orderDelivered", "orderCancelled"] * 2
            + ["orderCreated", "orderUpdated", "orderDelivered"]
        )
    )
    # orderCreated mostly complete (one param in ten missing), orderUpdated mostly partial.
    chance_missing = 1 if kind == "orderCreated" else 5

    def maybe(strategy: st.SearchStrategy[str]) -> str | None:
        return None if draw(st.integers(0, 9)) < chance_missing else draw(strategy)

    return Step(
        kind=kind,
        order_id=draw(st.sampled_from(ORDER_IDS)),
        status=maybe(st.sampled_from(STATUSES)),
        total=maybe(amounts),
        date=maybe(st.sampled_from(DATES)),
        items=draw(st.none() | st.sampled_from(sorted(ITEMS))),
        contact=draw(st.sampled_from(["A", "B", "A", "B", "none", NO_MATCH])),
    )


# --- the reference model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    status: str
    total: Decimal
    date: str
    items: str | None
    contact: str
    mismatch: bool = False


@dataclass(frozen=True)
class Outcome:
    state: Ref | None
    reason: str | None = None
    changed: bool = False
    flagged: bool = False


def model(state: Ref | None, step: Step, policy: MismatchPolicy) -> Outcome:
    """The spec's rules for one event, restated."""
    total = None if step.total is None else Decimal(step.total)
    if step.kind in ("orderDelivered", "orderCancelled"):
        # Changes the status; an order never seen is ignored.
        if state is None:
            return Outcome(state, "unknown_order")
        status = "DELIVERED" if step.kind == "orderDelivered" else "CANCELLED"
        candidate = replace(state, status=status)
    elif step.kind == "orderCreated" or state is None:
        # orderCreated, or an orderUpdated of an unknown order: the create requirements apply.
        if None in (step.total, step.status, step.date):
            return Outcome(state, "missing_required")
        if step.contact == "none":
            return Outcome(state, "missing_contact")
        if step.contact == NO_MATCH:
            return Outcome(state, "unknown_contact")
        assert total is not None and step.status is not None and step.date is not None
        candidate = Ref(step.status, total, step.date, step.items, step.contact)
    else:
        # orderUpdated merges what it carries; a contact it names must exist.
        if step.contact == NO_MATCH:
            return Outcome(state, "unknown_contact")
        candidate = Ref(
            status=step.status or state.status,
            total=state.total if total is None else total,
            date=step.date or state.date,
            items=state.items if step.items is None else step.items,
            contact=state.contact if step.contact == "none" else step.contact,
        )
    mismatch = (
        policy is not MismatchPolicy.IGNORE
        and candidate.items is not None
        and bool(ITEMS[candidate.items][0])  # an empty items array says nothing of the amount
        and ITEMS[candidate.items][1] != candidate.total
    )
    if mismatch and policy is MismatchPolicy.REJECT:
        return Outcome(state, "total_mismatch")
    candidate = replace(candidate, mismatch=mismatch)
    if candidate == state:
        return Outcome(state)
    flagged = mismatch and not (state is not None and state.mismatch)
    return Outcome(candidate, changed=True, flagged=flagged)


# --- what an RFM consumer folds ---------------------------------------------------------------


def fold_by_contact(records: Iterable[RfmRecord]) -> dict[tuple[str, str], Decimal]:
    """Per (contact, order): keep the highest version; delivered counts, revoked does not."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        key = (record.value["contactId"], record.value["externalOrderId"])
        if key not in latest or record.value["version"] >= latest[key]["version"]:
            latest[key] = record.value
    return {k: Decimal(v["totalCost"]) for k, v in latest.items() if v["op"] == "delivered"}


def fold_by_order(records: Iterable[RfmRecord]) -> dict[str, tuple[str, Decimal]]:
    """Per order, in the order sent: keep the highest version (the later one on a tie)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        key = record.value["externalOrderId"]
        if key not in latest or record.value["version"] >= latest[key]["version"]:
            latest[key] = record.value
    return {
        k: (v["contactId"], Decimal(v["totalCost"]))
        for k, v in latest.items()
        if v["op"] == "delivered"
    }


def contact_id(name: str) -> str:
    return {"A": "c-A", "B": "c-B"}[name]


# --- the property -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    sequence=st.lists(steps(), min_size=5, max_size=40),
    policy=st.sampled_from(list(MismatchPolicy)),
)
def test_apply_agrees_with_the_reference_model(
    sequence: list[Step], policy: MismatchPolicy
) -> None:
    rules = Rules(mismatch=policy)
    orders: dict[str, Order] = {}
    refs: dict[str, Ref] = {}
    emitted: list[tuple[RfmRecord, ...]] = []

    for offset, step in enumerate(sequence):
        before = orders.get(step.order_id)
        expected = model(refs.get(step.order_id), step, policy)
        transition = _apply(before, step, offset, rules)

        if isinstance(transition, Rejected):
            assert expected.reason == str(transition.reason), (step, transition.detail)
            emitted.append(())
            continue
        assert expected.reason is None, (step, expected.reason)
        assert transition.replay is False
        assert transition.changed is expected.changed, step
        assert transition.flagged is expected.flagged, step
        order = transition.order
        if expected.changed:
            assert order.version == (before.version if before else 0) + 1
            assert order.history[-1]["version"] == order.version
            assert all(r.value["version"] == order.version for r in transition.rfm)
        else:
            assert before is not None
            assert order.version == before.version
            assert order.content() == before.content()
            assert transition.rfm == ()
        assert order.offsets == {"orders.events/0": offset}
        orders[step.order_id] = order
        assert expected.state is not None
        refs[step.order_id] = expected.state
        emitted.append(transition.rfm)

    # Same final states.
    assert set(orders) == set(refs)
    for order_id, ref in refs.items():
        order = orders[order_id]
        assert str(order.status) == ref.status
        assert order.total_cost == ref.total
        assert order.date == ref.date
        assert order.contact_id == contact_id(ref.contact)
        assert order.total_mismatch is ref.mismatch

    # The RFM feed, folded, is exactly the delivered orders with their final totals.
    delivered = {o: r for o, r in refs.items() if r.status == "DELIVERED"}
    by_contact = {(contact_id(r.contact), o): r.total for o, r in delivered.items()}
    by_order = {o: (contact_id(r.contact), r.total) for o, r in delivered.items()}
    records = [r for batch in emitted for r in batch]
    assert fold_by_contact(records) == by_contact
    assert fold_by_order(records) == by_order

    # Replaying the whole sequence (same offsets) changes nothing.
    replayed: list[tuple[RfmRecord, ...]] = []
    for offset, step in enumerate(sequence):
        current = orders.get(step.order_id)
        transition = _apply(current, step, offset, rules)
        if isinstance(transition, Rejected):
            # Only an event the order never took comes back, and it meets the same state.
            assert current is None or current.offsets["orders.events/0"] < offset
            assert emitted[offset] == ()
            replayed.append(())
            continue
        assert transition.replay is True, step
        assert transition.changed is False
        assert transition.order == current
        assert bool(transition.rfm) == bool(emitted[offset])
        replayed.append(transition.rfm)
    assert fold_by_contact([*records, *(r for b in replayed for r in b)]) == by_contact
    assert fold_by_order([*records, *(r for b in replayed for r in b)]) == by_order

    # Whatever one event sent may be lost in a crash; replaying that event makes up for it.
    for lost, batch in enumerate(emitted):
        if batch:
            kept = [r for i, b in enumerate(emitted) if i != lost for r in b]
            assert fold_by_contact([*kept, *replayed[lost]]) == by_contact, lost


def _apply(order: Order | None, step: Step, offset: int, rules: Rules) -> Transition | Rejected:
    try:
        return apply(
            order,
            parse_event(step.event_bytes()),
            source=source(offset),
            now=f"t{offset}",
            contact=step.lookup(),
            rules=rules,
        )
    except Rejected as rejected:
        return rejected
