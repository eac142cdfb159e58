"""The contact directory in Redis.

Layout (every key under the configured prefix):
    contact:{id}        the contact as JSON
    contact:{id}:ix     the set of index keys that point at it, so a re-import drops stale ones
    ix:{field}:{value}  contact id, one per identifier (email values lower-cased)

Two contacts that share an identifier: the later write owns the index entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from processor import codec
from processor.contacts import Contact, Identifier, Lookup, Match, NoMatch

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors that mean "Redis is not there right now", never "the contact is unknown".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# Atomic replace of a contact and its index entries; an entry now owned by another contact
# (same email imported later for someone else) is left alone.
_UPSERT = """
local id = ARGV[1]
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('GET', k) == id then redis.call('DEL', k) end
end
redis.call('DEL', KEYS[2])
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
for i = 3, #ARGV do
  redis.call('SET', ARGV[i], id)
  redis.call('SADD', KEYS[2], ARGV[i])
end
return 1
"""


class ContactCache:
    """A bounded, expiring memory of identifier -> contact id, so repeat customers cost no
    round trip. Only matches are kept: a contact imported a moment ago is found at once. A match
    can be stale for at most ``ttl`` seconds after its contact changes elsewhere."""

    def __init__(
        self, size: int = 100_000, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        contact_id, expires = entry
        if expires < self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return contact_id

    def put(self, key: str, contact_id: str) -> None:
        if self.size <= 0 or self.ttl <= 0:
            return
        self._entries[key] = (contact_id, self._clock() + self.ttl)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class ContactDirectory:
    def __init__(
        self, client: aioredis.Redis, prefix: str = "op:", cache: ContactCache | None = None
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._upsert = client.register_script(_UPSERT)
        self.cache = cache if cache is not None else ContactCache(size=0)
        self.round_trips = 0

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "op:", cache: ContactCache | None = None
    ) -> ContactDirectory:
        # Connects lazily, on first use, inside whatever loop uses it.
        client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, prefix, cache)

    async def close(self) -> None:
        await self._redis.aclose()

    def _index_key(self, field: str, value: str) -> str:
        return f"{self._prefix}ix:{field}:{value}"

    def _contact_keys(self, contact_id: str) -> list[str]:
        base = f"{self._prefix}contact:{contact_id}"
        return [base, f"{base}:ix"]

    async def resolve(self, identifiers: Sequence[Identifier]) -> Lookup:
        """The first identifier (in priority order) that names a known contact."""
        return (await self.resolve_many([identifiers]))[0]

    async def resolve_many(self, batch: Sequence[Sequence[Identifier]]) -> list[Lookup]:
        """Many events' identifiers in at most one round trip.

        An identifier must be asked of Redis unless a cached match of higher or equal priority
        already decides the event; so the cache never changes which identifier wins.
        """
        wanted: dict[str, None] = {}
        known: dict[str, str] = {}  # read once: an entry may expire while we wait for Redis
        for idents in batch:
            for ident in idents:
                key = self._index_key(ident.field, ident.value)
                cached = self.cache.get(key)
                if cached is not None:
                    known[key] = cached
                    break
                wanted[key] = None
        fetched: dict[str, str] = {}
        if wanted:
            self.round_trips += 1
            keys = list(wanted)
            for key, value in zip(keys, await self._redis.mget(keys), strict=True):
                if value is not None:
                    fetched[key] = value.decode() if isinstance(value, bytes) else value
        results: list[Lookup] = []
        for idents in batch:
            if not idents:
                results.append(None)
                continue
            match: Match | None = None
            for ident in idents:
                key = self._index_key(ident.field, ident.value)
                contact_id = fetched.get(key) or known.get(key)
                if contact_id is not None:
                    self.cache.put(key, contact_id)
                    match = Match(contact_id, ident)
                    break
            results.append(match or NoMatch(tuple(idents)))
        return results

    async def upsert_many(self, contacts: Iterable[Contact]) -> int:
        # Our own writes drop our cache; other processes' writes age out of it within its ttl.
        self.cache.clear()
        count = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for contact in contacts:
                index = [self._index_key(f, v) for f, v in contact.index_entries()]
                await self._upsert(
                    keys=self._contact_keys(contact.id),
                    args=[contact.id, codec.dumps(contact.as_dict()), *index],
                    client=pipe,
                )
                count += 1
            await pipe.execute()
        return count

    async def upsert(self, contact: Contact) -> None:
        await self.upsert_many([contact])

    async def delete(self, contact_id: str) -> None:
        self.cache.clear()
        await self._upsert(keys=self._contact_keys(contact_id), args=[contact_id, ""])

    async def get(self, contact_id: str) -> dict[str, str] | None:
        raw = await self._redis.get(self._contact_keys(contact_id)[0])
        return None if raw is None else codec.loads(raw)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    on_wait: Callable[[], None] | None = None,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> T:
    """Run ``operation`` until Redis answers: an outage delays events, it never drops them."""
    delay = first_delay
    attempt = 0
    while True:
        try:
            return await operation()
        except UNREACHABLE as exc:
            attempt += 1
            log.warning("Redis unreachable during %s (attempt %d): %s", what, attempt, exc)
            if on_wait is not None:
                on_wait()
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
