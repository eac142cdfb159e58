"""The order state machine, transition by transition, and the RFM records it emits."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

import topics
from processor import codec
from processor.contacts import Identifier, Lookup
from processor.errors import Rejected
from processor.events import OrderEvent, Status, parse_event
from processor.orders import Order, RfmOp, RfmRecord, Rules, Source, Transition, apply
from processor.reasons import Reason
from processor.settings import MismatchPolicy

from .builders import (
    SEED_EXAMPLE,
    TOPIC,
    created,
    event,
    full_params,
    item,
    match,
    no_match,
    raw_event,
    source,
)

A = match("c-A")
B = match("c-B")


def at(offset: int) -> str:
    return f"2024-03-01T12:{offset // 60:02d}:{offset % 60:02d}.000+00:00"


class Run:
    """One order fed events at increasing offsets, as the agent does: the order is kept unless
    the transition is a replay, and every RFM record sent is collected."""

    def __init__(self, rules: Rules = Rules(), partition: int = 0) -> None:  # noqa: B008 - frozen
        self.rules = rules
        self.partition = partition
        self.order: Order | None = None
        self.offset = 0
        self.rfm: list[RfmRecord] = []

    def send(self, ev: OrderEvent, contact: Lookup = A) -> Transition:
        self.offset += 1
        return self.replay(ev, self.offset, contact)

    def replay(self, ev: OrderEvent, offset: int, contact: Lookup = A) -> Transition:
        transition = apply(
            self.order,
            ev,
            source=source(offset, self.partition),
            now=at(offset),
            contact=contact,
            rules=self.rules,
        )
        if not transition.replay:
            self.order = transition.order
        self.rfm.extend(transition.rfm)
        return transition

    def reject(self, ev: OrderEvent, contact: Lookup = A) -> Rejected:
        before = self.order
        with pytest.raises(Rejected) as info:
            self.send(ev, contact)
        assert self.order is before
        return info.value

    @property
    def current(self) -> Order:
        assert self.order is not None
        return self.order


def ops(records: list[RfmRecord] | tuple[RfmRecord, ...]) -> list[tuple[str, str, int]]:
    return [(r.value["op"], r.contact_id, r.value["version"]) for r in records]


def delivered_run(**create: Any) -> Run:
    run = Run()
    run.send(created(**create))
    run.send(event("orderDelivered"))
    run.rfm.clear()
    return run


# --- Source -----------------------------------------------------------------------------------


def test_source_names_its_stream_and_event() -> None:
    src = Source("orders.events", 3, 42)
    assert src.stream == "orders.events/3"
    assert src.event_id == "orders.events/3/42"


# --- create -----------------------------------------------------------------------------------


def test_order_created() -> None:
    ev = created(
        currency="UAH", items=[item(cost="10.00")], phone="+380501234567", externalOrderId="o-1"
    )
    transition = apply(None, ev, source=source(7), now=at(7), contact=A)
    order = transition.order
    assert order == Order(
        external_order_id="o-1",
        status=Status.INITIALIZED,
        total_cost=Decimal("10.00"),
        date="2024-01-02T03:04:05",
        currency="UAH",
        items=ev.items,
        extra={"phone": "+380501234567"},
        key_value=None,
        contact_id="c-A",
        matched_by=A.identifier,
        total_mismatch=False,
        created_at=at(7),
        updated_at=at(7),
        version=1,
        offsets={f"{TOPIC}/0": 7},
        history=(
            {
                "type": "orderCreated",
                "event": f"{TOPIC}/0/7",
                "at": at(7),
                "status": "INITIALIZED",
                "version": 1,
                "rfm": [],
                "rfmContacts": [],
            },
        ),
    )
    assert (transition.changed, transition.replay, transition.flagged, transition.rfm) == (
        True,
        False,
        False,
        (),
    )


@pytest.mark.parametrize("event_type", ["orderCreated", "orderUpdated"])
@pytest.mark.parametrize(
    ("drop", "detail"),
    [
        (("totalCost",), "totalCost"),
        (("status",), "status"),
        (("date",), "date"),
        (("totalCost", "date"), "totalCost, date"),
        (("totalCost", "status", "date"), "totalCost, status, date"),
    ],
)
def test_creating_without_a_required_param_is_missing_required(
    event_type: str, drop: tuple[str, ...], detail: str
) -> None:
    params: dict[str, Any] = {
        "totalCost": "10.00",
        "status": "INITIALIZED",
        "date": "2024-01-02T03:04:05",
    }
    for name in drop:
        del params[name]
    error = Run().reject(event(event_type, **params))
    assert error.reason is Reason.MISSING_REQUIRED
    assert error.detail == detail


def test_missing_required_is_reported_before_the_contact() -> None:
    error = Run().reject(created(status=None), contact=None)
    assert error.reason is Reason.MISSING_REQUIRED


@pytest.mark.parametrize("event_type", ["orderCreated", "orderUpdated"])
def test_creating_without_a_contact_identifier_is_missing_contact(event_type: str) -> None:
    error = Run().reject(parse_event(_raw(event_type)), contact=None)
    assert error.reason is Reason.MISSING_CONTACT


@pytest.mark.parametrize("event_type", ["orderCreated", "orderUpdated"])
def test_creating_for_a_contact_not_in_the_directory_is_unknown_contact(event_type: str) -> None:
    error = Run().reject(parse_event(_raw(event_type)), contact=no_match("ghost@example.com"))
    assert error.reason is Reason.UNKNOWN_CONTACT
    assert "ghost@example.com" in error.detail


def _raw(event_type: str) -> bytes:
    return raw_event(event_type, **full_params())


def test_order_updated_creates_an_absent_order() -> None:
    run = Run()
    transition = run.send(parse_event(_raw("orderUpdated")))
    assert transition.order.version == 1
    assert transition.order.status is Status.INITIALIZED
    assert transition.order.history[0]["type"] == "orderUpdated"


def test_second_order_created_replaces_the_order() -> None:
    run = Run()
    first = run.send(
        created(currency="UAH", items=[item(cost="10.00")], note="gift", keep="me"),
    ).order
    second = run.send(created(totalCost="5.00", status="IN_PROGRESS", note="other"), contact=B)
    order = second.order
    assert (order.total_cost, order.status, order.currency, order.items) == (
        Decimal("5.00"),
        Status.IN_PROGRESS,
        None,
        None,
    )
    assert order.extra == {"note": "other"}
    assert order.contact_id == "c-B"
    assert order.created_at == first.created_at
    assert order.updated_at == at(2)
    assert order.version == 2
    assert [h["version"] for h in order.history] == [1, 2]


@pytest.mark.parametrize(
    "again",
    [
        pytest.param(created(), id="created"),
        pytest.param(event("orderUpdated", totalCost="10.00"), id="updated-same-total"),
        pytest.param(event("orderUpdated", totalCost="10.0"), id="updated-equal-total"),
        pytest.param(event("orderUpdated", status="INITIALIZED"), id="updated-same-status"),
        pytest.param(event("orderUpdated"), id="updated-nothing"),
    ],
)
def test_identical_event_at_a_new_offset_changes_nothing(again: OrderEvent) -> None:
    run = Run()
    before = run.send(created()).order
    transition = run.send(again)
    assert transition.changed is False
    assert transition.replay is False
    assert transition.rfm == ()
    assert transition.order.content() == before.content()
    assert transition.order.version == before.version
    assert transition.order.history == before.history
    assert transition.order.updated_at == before.updated_at
    # The offset is still recorded, so the event is a replay from now on.
    assert transition.order.offsets == {f"{TOPIC}/0": 2}
    assert str(transition.order.total_cost) == "10.00"


def test_repeated_status_events_change_nothing() -> None:
    run = delivered_run()
    version = run.current.version
    for ev in (event("orderDelivered"), event("orderUpdated", status="DELIVERED")):
        transition = run.send(ev)
        assert (transition.changed, transition.order.version, transition.rfm) == (
            False,
            version,
            (),
        )
    run.send(event("orderCancelled"))
    version = run.current.version
    assert run.send(event("orderCancelled")).changed is False
    assert run.current.version == version


# --- update -----------------------------------------------------------------------------------


def test_order_updated_merges_over_the_order() -> None:
    run = Run()
    run.send(created(currency="UAH", items=[item(cost="10.00")], note="gift", phone="1"))
    transition = run.send(event("orderUpdated", status="IN_PROGRESS", note="wrapped", extra="x"))
    order = transition.order
    assert order.status is Status.IN_PROGRESS
    assert order.total_cost == Decimal("10.00")
    assert order.date == "2024-01-02T03:04:05"
    assert order.currency == "UAH"
    assert order.items is not None and len(order.items) == 1
    assert order.extra == {"note": "wrapped", "phone": "1", "extra": "x"}
    assert order.contact_id == "c-A"
    assert order.version == 2


@pytest.mark.parametrize(
    ("params", "attr", "expected"),
    [
        ({"totalCost": "20.00"}, "total_cost", Decimal("20.00")),
        ({"date": "2024-05-06T07:08:09"}, "date", "2024-05-06T07:08:09"),
        ({"currency": "EUR"}, "currency", "EUR"),
        ({"status": "ABANDONED_SHOPPING_CART"}, "status", Status.ABANDONED_SHOPPING_CART),
    ],
)
def test_order_updated_changes_what_it_carries(
    params: dict[str, Any], attr: str, expected: Any
) -> None:
    run = Run(Rules(mismatch=MismatchPolicy.IGNORE))
    before = run.send(created(currency="UAH")).order
    order = run.send(event("orderUpdated", **params)).order
    assert getattr(order, attr) == expected
    changed = {
        name
        for name in ("status", "total_cost", "date", "currency", "items", "contact_id")
        if getattr(order, name) != getattr(before, name)
    }
    assert changed == {attr}


def test_order_updated_replaces_items_and_key_value() -> None:
    run = Run(Rules(mismatch=MismatchPolicy.IGNORE))
    run.send(created(items=[item(externalItemId="a"), item(externalItemId="b")]))
    order = run.send(event("orderUpdated", items=[item(externalItemId="c")])).order
    assert order.items is not None
    assert [i["externalItemId"] for i in order.items] == ["c"]
    order = run.send(parse_event(_keyed("orderUpdated", "kv-2"))).order
    assert order.key_value == "kv-2"
    assert order.items is not None and len(order.items) == 1


def _keyed(event_type: str, key_value: str) -> bytes:
    return raw_event(event_type, key_value=key_value, externalOrderId="o-1")


def test_order_updated_without_identifier_keeps_the_contact() -> None:
    run = Run()
    run.send(created())
    order = run.send(event("orderUpdated", status="IN_PROGRESS"), contact=None).order
    assert (order.contact_id, order.matched_by) == ("c-A", A.identifier)


def test_order_updated_with_another_contact_moves_the_order() -> None:
    run = Run()
    run.send(created())
    order = run.send(event("orderUpdated"), contact=B).order
    assert (order.contact_id, order.matched_by) == ("c-B", B.identifier)
    assert order.version == 2


def test_order_updated_naming_an_unknown_contact_is_unknown_contact() -> None:
    run = Run()
    run.send(created())
    error = run.reject(event("orderUpdated", status="IN_PROGRESS"), contact=no_match())
    assert error.reason is Reason.UNKNOWN_CONTACT


def test_a_new_identifier_for_the_same_contact_is_a_change_but_not_an_rfm_event() -> None:
    run = delivered_run()
    by_email = match("c-A", field="email")
    transition = run.send(event("orderUpdated"), contact=by_email)
    assert transition.changed is True
    assert transition.order.matched_by == by_email.identifier
    assert transition.rfm == ()


# --- delivered / cancelled --------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["orderDelivered", "orderCancelled"])
@pytest.mark.parametrize("contact", [A, None])
def test_status_event_for_an_unknown_order_is_unknown_order(
    event_type: str, contact: Lookup
) -> None:
    error = Run().reject(event(event_type, externalOrderId="nope"), contact=contact)
    assert error.reason is Reason.UNKNOWN_ORDER
    assert "nope" in error.detail


@pytest.mark.parametrize(
    ("event_type", "status"),
    [("orderDelivered", Status.DELIVERED), ("orderCancelled", Status.CANCELLED)],
)
def test_status_events_set_only_the_status(event_type: str, status: Status) -> None:
    run = Run()
    before = run.send(created(currency="UAH")).order
    order = run.send(event(event_type, totalCost="99.00", currency="EUR"), contact=None).order
    assert order.status is status
    assert (order.total_cost, order.currency, order.contact_id) == (
        before.total_cost,
        before.currency,
        before.contact_id,
    )
    assert order.version == 2
    assert order.history[-1]["type"] == event_type


# --- RFM --------------------------------------------------------------------------------------


def test_entering_delivered_emits_one_delivered_record() -> None:
    run = Run()
    run.send(created(currency="UAH", items=[item(cost="10.00")]))
    transition = run.send(event("orderDelivered"))
    assert len(transition.rfm) == 1
    record = transition.rfm[0]
    assert record.contact_id == "c-A"
    assert record.value == {
        "op": "delivered",
        "externalOrderId": "o-1",
        "contactId": "c-A",
        "totalCost": "10.00",
        "currency": "UAH",
        "date": "2024-01-02T03:04:05",
        "items": list(transition.order.items or ()),
        "version": 2,
        "status": "DELIVERED",
    }
    assert transition.order.history[-1]["rfm"] == ["delivered"]


@pytest.mark.parametrize(
    "ev",
    [
        pytest.param(created(status="DELIVERED"), id="created-delivered"),
        pytest.param(event("orderUpdated", status="DELIVERED"), id="updated-to-delivered"),
        pytest.param(event("orderDelivered"), id="delivered"),
    ],
)
def test_every_way_into_delivered_emits_delivered(ev: OrderEvent) -> None:
    run = Run()
    run.send(created())
    assert ops(run.send(ev).rfm) == [("delivered", "c-A", 2)]


def test_created_as_delivered_emits_delivered_at_version_one() -> None:
    assert ops(Run().send(created(status="DELIVERED")).rfm) == [("delivered", "c-A", 1)]


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.DELIVERED], ids=str)
def test_orders_that_never_deliver_emit_nothing(status: Status) -> None:
    run = Run()
    run.send(created(status=str(status)))
    run.send(event("orderUpdated", totalCost="11.00"))
    run.send(event("orderCancelled"))
    assert run.rfm == []


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"totalCost": "12.50"}, id="amount"),
        pytest.param({"currency": "EUR"}, id="currency"),
        pytest.param({"date": "2024-02-02T00:00:00"}, id="date"),
        pytest.param({"items": [item(cost="10.00", name="renamed")]}, id="items"),
    ],
)
def test_rfm_values_changing_while_delivered_emit_delivered_with_new_values(
    params: dict[str, Any],
) -> None:
    run = delivered_run(items=[item(cost="10.00")])
    transition = run.send(event("orderUpdated", **params))
    assert ops(transition.rfm) == [("delivered", "c-A", 3)]
    value = transition.rfm[0].value
    assert value["totalCost"] == str(transition.order.total_cost)
    assert value["currency"] == transition.order.currency
    assert value["date"] == transition.order.date
    assert value["items"] == list(transition.order.items or ())


def test_amount_change_while_delivered_carries_the_new_total() -> None:
    run = delivered_run()
    transition = run.send(event("orderUpdated", totalCost="12.50"))
    assert transition.rfm[0].value["totalCost"] == "12.50"


def test_other_changes_while_delivered_emit_nothing() -> None:
    run = delivered_run()
    transition = run.send(event("orderUpdated", note="left at the door"))
    assert transition.changed is True
    assert transition.order.version == 3
    assert transition.rfm == ()


@pytest.mark.parametrize(
    "leave",
    [
        pytest.param(event("orderCancelled"), id="cancelled"),
        pytest.param(event("orderUpdated", status="IN_PROGRESS"), id="updated-away"),
        pytest.param(created(status="INITIALIZED"), id="re-created"),
    ],
)
def test_leaving_delivered_emits_revoked(leave: OrderEvent) -> None:
    run = delivered_run()
    transition = run.send(leave)
    assert ops(transition.rfm) == [("revoked", "c-A", 3)]
    value = transition.rfm[0].value
    assert value["status"] == str(transition.order.status)
    assert value["externalOrderId"] == "o-1"


def test_deliver_cancel_deliver() -> None:
    run = Run()
    run.send(created())
    run.send(event("orderDelivered"))
    run.send(event("orderCancelled"))
    run.send(event("orderDelivered"))
    assert ops(run.rfm) == [
        ("delivered", "c-A", 2),
        ("revoked", "c-A", 3),
        ("delivered", "c-A", 4),
    ]


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(event("orderUpdated"), id="updated"),
        pytest.param(created(status="DELIVERED"), id="re-created"),
    ],
)
def test_contact_change_while_delivered_revokes_old_then_delivers_new(move: OrderEvent) -> None:
    run = delivered_run()
    transition = run.send(move, contact=B)
    assert ops(transition.rfm) == [("revoked", "c-A", 3), ("delivered", "c-B", 3)]
    revoked, delivered = transition.rfm
    assert revoked.value["contactId"] == "c-A"
    assert delivered.value["contactId"] == "c-B"
    assert transition.order.history[-1]["rfm"] == ["revoked", "delivered"]
    assert transition.order.history[-1]["rfmContacts"] == ["c-A", "c-B"]


def test_contact_change_out_of_delivered_revokes_the_old_contact_only() -> None:
    run = delivered_run()
    transition = run.send(event("orderUpdated", status="IN_PROGRESS"), contact=B)
    assert ops(transition.rfm) == [("revoked", "c-A", 3)]


def test_contact_change_while_not_delivered_emits_nothing() -> None:
    run = Run()
    run.send(created())
    assert run.send(event("orderUpdated"), contact=B).rfm == ()


# --- totalCost against the items --------------------------------------------------------------


MISMATCHED = {"totalCost": "12.00", "items": [item(cost="5.00", quantity=2)]}


def test_mismatch_flag_keeps_and_marks_the_order() -> None:
    run = Run(Rules(mismatch=MismatchPolicy.FLAG))
    transition = run.send(created(**MISMATCHED))
    assert transition.order.total_mismatch is True
    assert transition.flagged is True
    # Still flagged, but not flagged anew.
    again = run.send(event("orderUpdated", status="IN_PROGRESS"))
    assert (again.order.total_mismatch, again.flagged) == (True, False)
    fixed = run.send(event("orderUpdated", totalCost="10.00"))
    assert (fixed.order.total_mismatch, fixed.flagged) == (False, False)
    broken = run.send(event("orderUpdated", items=[item(cost="1.00")]))
    assert (broken.order.total_mismatch, broken.flagged) == (True, True)


def test_mismatch_reject_dead_letters_the_event() -> None:
    run = Run(Rules(mismatch=MismatchPolicy.REJECT))
    error = run.reject(created(**MISMATCHED))
    assert error.reason is Reason.TOTAL_MISMATCH
    assert "12.00" in error.detail and "10.00" in error.detail
    run.send(created(totalCost="10.00", items=MISMATCHED["items"]))
    error = run.reject(event("orderUpdated", totalCost="10.01"))
    assert error.reason is Reason.TOTAL_MISMATCH
    assert run.current.total_cost == Decimal("10.00")


def test_mismatch_ignore_does_not_check() -> None:
    transition = Run(Rules(mismatch=MismatchPolicy.IGNORE)).send(created(**MISMATCHED))
    assert (transition.order.total_mismatch, transition.flagged) == (False, False)


@pytest.mark.parametrize("policy", list(MismatchPolicy))
@pytest.mark.parametrize(
    ("total", "items"),
    [
        pytest.param("10.00", None, id="no-items"),
        pytest.param("10", [item(cost="5.00", quantity=2)], id="equal-by-value"),
        pytest.param("1.50", [item(cost="0.50", quantity=3)], id="quantity"),
        pytest.param("0.30", [item(cost="0.10"), item(cost="0.20")], id="no-float-error"),
    ],
)
def test_matching_totals_pass_every_policy(
    policy: MismatchPolicy, total: str, items: list[dict[str, Any]] | None
) -> None:
    transition = Run(Rules(mismatch=policy)).send(created(totalCost=total, items=items))
    assert (transition.order.total_mismatch, transition.flagged) == (False, False)


def test_seed_example_is_flagged_for_its_total() -> None:
    # The spec's own example: totalCost 258.0, one item of cost 990.
    transition = apply(None, parse_event(SEED_EXAMPLE), source=source(0), now=at(0), contact=A)
    assert transition.flagged is True
    assert transition.order.external_order_id == "12345679"


# --- history ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
def test_history_is_capped_at_the_limit(limit: int) -> None:
    run = Run(Rules(history_limit=limit))
    run.send(created())
    for n in range(1, 6):
        run.send(event("orderUpdated", totalCost=f"{10 + n}.00"))
    history = run.current.history
    assert len(history) == limit
    assert [h["version"] for h in history] == list(range(7 - limit, 7))
    assert history[-1]["event"] == f"{TOPIC}/0/6"


# --- replay by source offset ------------------------------------------------------------------


@pytest.mark.parametrize("back", [0, 1, 2])
def test_replayed_offset_changes_nothing(back: int) -> None:
    run = Run()
    run.send(created())
    run.send(event("orderUpdated", totalCost="11.00"))
    run.send(event("orderUpdated", status="IN_PROGRESS"))
    before = run.current
    replayed = run.replay(event("orderUpdated", totalCost="99.00"), run.offset - back)
    assert (replayed.replay, replayed.changed, replayed.rfm) == (True, False, ())
    assert replayed.order == before


def test_same_offset_on_another_partition_is_not_a_replay() -> None:
    run = Run()
    run.send(created())
    transition = apply(
        run.current,
        event("orderUpdated", totalCost="11.00"),
        source=source(1, 1),
        now=at(9),
        contact=None,
    )
    assert transition.replay is False
    assert transition.order.offsets == {f"{TOPIC}/0": 1, f"{TOPIC}/1": 1}


def test_unchanged_event_is_a_replay_afterwards() -> None:
    run = Run()
    run.send(created())
    run.send(created())
    assert run.replay(created(), 2).replay is True


@pytest.mark.parametrize(
    ("status", "ev"),
    [
        pytest.param("INITIALIZED", event("orderDelivered"), id="delivered"),
        pytest.param("DELIVERED", event("orderUpdated", totalCost="12.00"), id="amount"),
        pytest.param("DELIVERED", event("orderCancelled"), id="revoked"),
    ],
)
def test_replay_re_emits_the_rfm_record_it_produced(status: str, ev: OrderEvent) -> None:
    run = Run()
    run.send(created(status=status))
    original = run.send(ev)
    assert original.rfm
    replayed = run.replay(ev, run.offset)
    assert replayed.replay is True
    assert replayed.order == original.order
    assert replayed.rfm == original.rfm


def test_replay_of_an_event_without_rfm_emits_nothing() -> None:
    run = delivered_run()
    run.send(event("orderUpdated", note="x"))
    assert run.replay(event("orderUpdated", note="x"), run.offset).rfm == ()


def test_replay_after_later_changes_emits_the_current_state() -> None:
    run = Run()
    run.send(created())
    run.send(event("orderDelivered"))  # offset 2: delivered
    run.send(event("orderCancelled"))  # offset 3: revoked
    replayed = run.replay(event("orderDelivered"), 2)
    assert ops(replayed.rfm) == [("revoked", "c-A", 3)]


def test_replay_of_a_contact_change_re_emits_the_revoke_too() -> None:
    # The crash that causes a replay may have lost any record of the event: the old contact's
    # revoke as much as the new contact's delivered.
    run = delivered_run()
    original = run.send(event("orderUpdated"), contact=B)
    replayed = run.replay(event("orderUpdated"), run.offset, contact=B)
    assert replayed.replay is True
    expected = [("revoked", "c-A", 3), ("delivered", "c-B", 3)]
    assert ops(original.rfm) == expected
    assert ops(replayed.rfm) == expected


def test_replay_of_a_contact_change_after_the_order_moved_on() -> None:
    run = delivered_run()
    run.send(event("orderUpdated"), contact=B)  # offset 3: revoke c-A, deliver c-B
    run.send(event("orderCancelled"))  # offset 4: revoke c-B
    replayed = run.replay(event("orderUpdated"), 3, contact=B)
    assert ops(replayed.rfm) == [("revoked", "c-A", 4), ("revoked", "c-B", 4)]


def test_replay_of_history_written_before_rfm_contacts_were_kept() -> None:
    run = delivered_run()
    run.send(event("orderUpdated"), contact=B)
    old_history = tuple(
        {k: v for k, v in entry.items() if k != "rfmContacts"} for entry in run.current.history
    )
    run.order = replace(run.current, history=old_history)
    replayed = run.replay(event("orderUpdated"), run.offset, contact=B)
    assert ops(replayed.rfm) == [("delivered", "c-B", 3)]


# --- serialization ----------------------------------------------------------------------------


def rich_order() -> Order:
    run = Run()
    run.send(
        parse_event(
            b'{"eventTypeKey":"orderCreated","keyValue":"kv","params":['
            b'{"name":"externalOrderId","value":"o-1"},{"name":"totalCost","value":19.99},'
            b'{"name":"status","value":"INITIALIZED"},{"name":"date","value":"2024-01-02T03:04:05"},'
            b'{"name":"currency","value":"UAH"},{"name":"promo","value":{"code":"X","n":[1]}},'
            b'{"name":"items","value":[{"externalItemId":1,"name":"n","quantity":3,"cost":6.66,'
            b'"url":"u","imageUrl":"i","opts":{"a":[1,2]}}]}]}'
        )
    )
    run.send(event("orderDelivered"))
    run.send(event("orderUpdated", totalCost="19.98"))
    run.partition = 2
    run.send(event("orderUpdated", note="n"), contact=B)
    return run.current


def test_order_round_trips_through_the_codec_exactly() -> None:
    order = rich_order()
    assert order.total_mismatch is False
    assert len(order.offsets) == 2
    data = codec.loads(codec.dumps(order.to_dict()))
    back = Order.from_dict(data)
    assert back == order
    assert back.content() == order.content()
    assert back.to_dict() == order.to_dict()
    assert str(back.total_cost) == "19.98"
    assert data["totalCost"] == "19.98"


def test_round_trip_keeps_the_written_scale_of_money() -> None:
    run = Run()
    run.send(created(totalCost="258.0"))
    back = Order.from_dict(codec.loads(codec.dumps(run.current.to_dict())))
    assert str(back.total_cost) == "258.0"


def test_a_round_tripped_order_takes_the_next_event_like_the_original() -> None:
    order = rich_order()
    back = Order.from_dict(codec.loads(codec.dumps(order.to_dict())))
    ev = event("orderCancelled")
    kwargs: dict[str, Any] = {"source": source(50), "now": at(50), "contact": None}
    assert apply(back, ev, **kwargs) == apply(order, ev, **kwargs)


def floats_in(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in floats_in(v)]
    return []


def test_money_is_never_a_float_in_the_order_or_its_rfm_records() -> None:
    # Every amount of rich_order() came as a JSON number, which orjson reads as a float.
    order = rich_order()
    data = order.to_dict()
    assert floats_in(data) == []
    assert floats_in(codec.loads(codec.dumps(data))) == []
    assert isinstance(data["totalCost"], str)
    assert [(i["cost"], i["quantity"]) for i in data["items"]] == [("6.66", "3")]
    run = Run()
    run.order = order
    run.offset = 100
    transition = run.send(event("orderUpdated", totalCost=20.5, status="DELIVERED"), contact=B)
    assert transition.rfm
    for record in transition.rfm:
        assert floats_in(record.value) == []
        assert isinstance(record.value["totalCost"], str)


def test_matched_by_round_trips_as_an_identifier() -> None:
    order = rich_order()
    back = Order.from_dict(codec.loads(codec.dumps(order.to_dict())))
    assert isinstance(back.matched_by, Identifier)
    assert back.matched_by == B.identifier


def test_apply_does_not_touch_the_order_it_was_given() -> None:
    order = rich_order()
    snapshot = codec.dumps(order.to_dict())
    apply(order, event("orderCancelled"), source=source(99), now=at(99), contact=None)
    assert codec.dumps(order.to_dict()) == snapshot


def test_rfm_op_values() -> None:
    assert [str(op) for op in RfmOp] == ["delivered", "revoked"]


RFM_SCHEMA = topics.load_schema("schemas/orders.rfm.schema.json")


@pytest.mark.parametrize("total", ["0", "258.0", "19.99", "1000000", "0.000001"])
def test_rfm_records_have_the_schema_fields_and_a_plain_decimal_total(total: str) -> None:
    run = Run()
    run.send(created(totalCost=total, status="DELIVERED"))
    run.send(event("orderCancelled"))
    assert [r.value["op"] for r in run.rfm] == ["delivered", "revoked"]
    for record in run.rfm:
        value = codec.loads(codec.dumps(record.value))
        assert set(value) == set(RFM_SCHEMA["required"]) == set(RFM_SCHEMA["properties"])
        assert re.fullmatch(RFM_SCHEMA["properties"]["totalCost"]["pattern"], value["totalCost"])
        assert value["op"] in RFM_SCHEMA["properties"]["op"]["enum"]
        assert value["version"] >= 1


@pytest.mark.parametrize("total", ["1e2", "0.0000001"])
def test_rfm_total_is_a_plain_decimal_even_for_exponent_input(total: str) -> None:
    transition = Run().send(created(totalCost=total, status="DELIVERED"))
    value = transition.rfm[0].value
    assert re.fullmatch(RFM_SCHEMA["properties"]["totalCost"]["pattern"], value["totalCost"])


def test_absurd_item_amounts_are_rejected_not_a_crash() -> None:
    # 1e999999 x 1e999999 would overflow the decimal context: refused while parsing.
    with pytest.raises(Rejected) as info:
        created(totalCost="1", items=[item(cost="1e999999", quantity="1e999999")])
    assert info.value.reason is Reason.INVALID_ITEM
