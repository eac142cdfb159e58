"""Contacts and how an event names its contact. Pure: the Redis side is :mod:`processor.directory`.

Identification order (first present identifier that matches a contact wins):
    1. the custom identification params, if configured (e.g. a unique token);
    2. externalCustomerId;
    3. the default names: ContactId, Contact_id, Email, EmailAddress, UserEmail, ContactEmail,
       Phone, SMS, PhoneNumber, PushToken, ContactKey, Contact_key.
Param names match case-insensitively. Values match exactly, except email values, which match
case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from processor.errors import Rejected
from processor.immutable import immutable
from processor.reasons import Reason

#: Canonical identifier fields of a contact.
ID = "id"
EMAIL = "email"
KNOWN_FIELDS = ("externalCustomerId", EMAIL, "phone", "contactKey", "pushToken")

#: Default identification params, in priority order, and the contact field each one names.
DEFAULT_ID_PARAMS: tuple[tuple[str, str], ...] = (
    ("ContactId", ID),
    ("Contact_id", ID),
    ("Email", EMAIL),
    ("EmailAddress", EMAIL),
    ("UserEmail", EMAIL),
    ("ContactEmail", EMAIL),
    ("Phone", "phone"),
    ("SMS", "phone"),
    ("PhoneNumber", "phone"),
    ("PushToken", "pushToken"),
    ("ContactKey", "contactKey"),
    ("Contact_key", "contactKey"),
)

_CANONICAL = {name.lower(): name for name in (ID, *KNOWN_FIELDS)}


@immutable
class Identifier:
    """One way to find a contact: the event's param, the contact field it names, the value."""

    param: str
    field: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"param": self.param, "field": self.field, "value": self.value}


@immutable
class Contact:
    id: str
    #: Identifier field -> value; the field names are canonical (see :func:`canonical_field`).
    identifiers: Mapping[str, str]

    def index_entries(self) -> list[tuple[str, str]]:
        """(field, normalized value) pairs under which the directory finds this contact."""
        entries = [(ID, self.id)]
        entries.extend((f, normalize(f, v)) for f, v in self.identifiers.items())
        return entries

    def as_dict(self) -> dict[str, str]:
        return {ID: self.id, **self.identifiers}


@immutable
class Match:
    contact_id: str
    identifier: Identifier


def canonical_field(name: str) -> str:
    """Known fields keep their documented spelling; custom identifier fields are lower-cased."""
    return _CANONICAL.get(name.lower(), name.lower())


def normalize(field: str, value: str) -> str:
    return value.lower() if field == EMAIL else value


def parse_contact(record: Mapping[str, Any]) -> Contact:
    """A contact from a CSV row or JSON object: ``id`` plus any identifier columns."""
    identifiers: dict[str, str] = {}
    contact_id: str | None = None
    for name, raw in record.items():
        if raw is None or raw == "":
            continue
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise Rejected(Reason.INVALID_CONTACT, f"{name} must be a string")
        field = canonical_field(str(name))
        if field == ID:
            contact_id = str(raw)
        else:
            identifiers[field] = str(raw)
    if not contact_id:
        raise Rejected(Reason.INVALID_CONTACT, "the contact has no id")
    return Contact(id=contact_id, identifiers=identifiers)


def identification_order(custom_params: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(param name, contact field) pairs in the order identification tries them."""
    custom = tuple((p, canonical_field(p)) for p in custom_params)
    return (*custom, ("externalCustomerId", "externalCustomerId"), *DEFAULT_ID_PARAMS)


def identifiers(
    params: Mapping[str, Any], order: Iterable[tuple[str, str]]
) -> tuple[Identifier, ...]:
    """The event's identifiers, in priority order; param names match case-insensitively (the
    first param of a name, in the event's order, stands for all its spellings)."""
    ranks = _ranks(tuple(order))
    hits: list[tuple[int, str, str, Any]] = []
    names: set[str] = set()
    for name, value in params.items():
        lower = name.lower()
        entries = ranks.get(lower)
        if entries is None or lower in names:
            continue
        names.add(lower)
        hits.extend((rank, name, field, value) for rank, field in entries)
    hits.sort(key=itemgetter(0))
    found: list[Identifier] = []
    seen: set[tuple[str, str]] = set()
    for _, name, field, value in hits:
        if value is None or value == "" or isinstance(value, bool):
            continue
        if not isinstance(value, (str, int)):
            continue
        ident = Identifier(param=name, field=field, value=normalize(field, str(value)))
        if (ident.field, ident.value) not in seen:
            seen.add((ident.field, ident.value))
            found.append(ident)
    return tuple(found)


@lru_cache(maxsize=16)
def _ranks(order: tuple[tuple[str, str], ...]) -> dict[str, tuple[tuple[int, str], ...]]:
    """Each lower-cased param name of an identification order: its places in it and the contact
    field at each. Looked up once per param of an event, instead of lower-casing the whole order
    (14 names) for every event."""
    ranks: dict[str, list[tuple[int, str]]] = {}
    for rank, (param, field) in enumerate(order):
        ranks.setdefault(param.lower(), []).append((rank, field))
    return {name: tuple(entries) for name, entries in ranks.items()}


@immutable
class NoMatch:
    """The event named its contact, but no contact in the directory has those identifiers."""

    tried: tuple[Identifier, ...]


#: What the directory answered for an event: None when the event carries no identifier.
Lookup = Match | NoMatch | None
