"""The contact directory against the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from processor.contacts import Identifier, Match, NoMatch, parse_contact
from processor.directory import ContactCache, ContactDirectory

pytestmark = pytest.mark.integration


@pytest.fixture
async def directory(redis_url: str) -> AsyncIterator[ContactDirectory]:
    d = ContactDirectory.from_url(redis_url, f"t{uuid.uuid4().hex[:8]}:", ContactCache())
    yield d
    await d.close()


def email(value: str, param: str = "Email") -> Identifier:
    return Identifier(param=param, field="email", value=value)


def phone(value: str) -> Identifier:
    return Identifier(param="Phone", field="phone", value=value)


async def test_reimport_drops_stale_identifiers(directory: ContactDirectory) -> None:
    await directory.upsert(parse_contact({"id": "c-1", "email": "Old@Example.com"}))
    assert await directory.resolve([email("old@example.com")]) == Match(
        "c-1", email("old@example.com")
    )
    await directory.upsert(parse_contact({"id": "c-1", "email": "new@example.com"}))
    assert await directory.resolve([email("old@example.com")]) == NoMatch(
        (email("old@example.com"),)
    )
    assert await directory.get("c-1") == {"id": "c-1", "email": "new@example.com"}


async def test_delete_removes_contact_and_index(directory: ContactDirectory) -> None:
    await directory.upsert(parse_contact({"id": "c-2", "phone": "+1"}))
    await directory.delete("c-2")
    assert await directory.get("c-2") is None
    assert isinstance(await directory.resolve([phone("+1")]), NoMatch)


async def test_an_identifier_taken_over_stays_with_its_new_owner(
    directory: ContactDirectory,
) -> None:
    await directory.upsert(parse_contact({"id": "c-3", "phone": "+3"}))
    await directory.upsert(parse_contact({"id": "c-4", "phone": "+3"}))
    await directory.upsert(parse_contact({"id": "c-3", "email": "c3@example.com"}))
    result = await directory.resolve([phone("+3")])
    assert isinstance(result, Match) and result.contact_id == "c-4"


async def test_batch_resolves_in_one_round_trip_and_cache_keeps_priority(
    directory: ContactDirectory,
) -> None:
    await directory.upsert_many(
        [
            parse_contact({"id": "c-5", "email": "five@example.com", "phone": "+5"}),
            parse_contact({"id": "c-6", "phone": "+6"}),
        ]
    )
    before = directory.round_trips
    results = await directory.resolve_many(
        [[email("five@example.com")], [phone("+6")], [], [email("none@example.com")]]
    )
    assert directory.round_trips == before + 1
    assert [type(r).__name__ for r in results] == ["Match", "Match", "NoneType", "NoMatch"]

    # Cached now: the same identifiers cost no round trip...
    await directory.resolve_many([[phone("+6")]])
    assert directory.round_trips == before + 1
    # ...but a higher-priority identifier in front of a cached one is still asked of Redis,
    # and wins: the cache never changes which identifier decides.
    result = await directory.resolve_many(
        [[email("five@example.com", "ContactEmail"), phone("+6")]]
    )
    assert directory.round_trips == before + 1  # five@ is cached too
    assert isinstance(result[0], Match) and result[0].contact_id == "c-5"
    result = await directory.resolve_many([[phone("+5"), phone("+6")]])
    assert directory.round_trips == before + 2
    assert isinstance(result[0], Match) and result[0].contact_id == "c-5"
