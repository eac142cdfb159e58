"""Whatever JSON a producer sends in the Generate-event shape, the pure core answers with a state
or a reason (:class:`Rejected`), never with another exception: that would make the event a
``processing_error`` dead letter instead of naming what is wrong with it. It matters twice, since
the compiled core (setup.py) checks annotated types at run time where the interpreter does not,
and `make test` runs this on both."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import event as count
from hypothesis import given, settings
from hypothesis import strategies as st

from processor import codec
from processor.errors import Rejected
from processor.events import ITEM_FIELDS, ORDER_FIELDS, parse_event
from processor.orders import Order, apply

from .builders import match, source

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "12.50", "1e999", "-1", "2024-01-02T03:04:05", "DELIVERED", "[]"]),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` seven times in eight: so that many documents get as far as apply."""
    return st.sampled_from(range(8)).flatmap(lambda n: bad if n == 7 else good)


json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
#: Good values by param name, so that many documents get past parsing into apply.
GOOD: dict[str, list[Any]] = {
    "externalOrderId": ["o-1", "o-2", 7],
    "totalCost": ["12.50", 12.5, "0"],
    "status": ["INITIALIZED", "DELIVERED", "CANCELLED"],
    "date": ["2024-01-02T03:04:05"],
    "currency": ["EUR"],
    "email": ["a@example.com"],
    "phone": ["+441234567890"],
    "externalCustomerId": ["cust-1"],
}
good_item = st.fixed_dictionaries(
    {
        "externalItemId": st.just("i-1"),
        "name": st.just("thing"),
        "quantity": st.sampled_from([1, "2", 0.5]),
        "cost": st.sampled_from(["6.25", 12.5, "0"]),
        "url": st.just("u"),
        "imageUrl": st.just("i"),
    },
    optional={"extra": json_values},
)
items = st.lists(
    mostly(
        good_item,
        st.dictionaries(st.sampled_from([*ITEM_FIELDS, "extra"]), json_values, max_size=7),
    ),
    max_size=3,
)
any_value = st.one_of(json_values, items, items.map(lambda v: orjson.dumps(v).decode()))


def param(name: str) -> st.SearchStrategy[dict[str, Any]]:
    good = st.sampled_from(GOOD[name]) if name in GOOD else items if name == "items" else any_value
    return st.fixed_dictionaries(
        {"name": st.just(name), "value": st.one_of(*[good] * 6, any_value)}
    )


param_names = st.sampled_from(
    [*ORDER_FIELDS, "externalOrderId", "email", "phone", "externalCustomerId", "x"]
)
well_formed = st.lists(
    param_names.flatmap(param), min_size=4, max_size=9, unique_by=lambda p: p["name"]
)
#: Now and then an entry that is not a {name, value} object at all, or a name given twice.
params = mostly(
    well_formed,
    st.one_of(
        st.tuples(well_formed, json_values).map(lambda pair: [*pair[0], pair[1]]),
        well_formed.map(lambda ps: [*ps, *ps[:1]]),
    ),
)
event_types = mostly(
    st.sampled_from(["orderCreated", "orderUpdated", "orderDelivered", "orderCancelled"]),
    st.sampled_from(["other", 3]),
)
documents = mostly(
    st.fixed_dictionaries(
        {"eventTypeKey": event_types, "params": params}, optional={"keyValue": json_values}
    ),
    json_values,  # not an event at all
)


@settings(max_examples=200, deadline=None)
@given(first=documents, second=documents)
def test_any_document_is_applied_or_rejected_with_a_reason(first: Any, second: Any) -> None:
    order: Order | None = None
    for offset, document in enumerate((first, second)):
        try:
            event = parse_event(orjson.dumps(document))
            same = order is not None and order.external_order_id == event.external_order_id
            transition = apply(
                order if same else None,
                event,
                source=source(offset),
                now="2024-01-01T00:00:00",
                contact=match("c-1"),
            )
        except Rejected as rejected:
            assert rejected.reason and rejected.detail
            count(str(rejected.reason))
            continue
        count("applied")
        order = transition.order
        # What is kept must be writable as the table stores it, and read back.
        assert Order.from_dict(codec.loads(codec.dumps(order.to_dict()))) == order
