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


class ContactDirectory:
    def __init__(self, client: aioredis.Redis, prefix: str = "op:") -> None:
        self._redis = client
        self._prefix = prefix
        self._upsert = client.register_script(_UPSERT)

    @classmethod
    def from_url(cls, url: str, prefix: str = "op:") -> ContactDirectory:
        # Connects lazily, on first use, inside whatever loop uses it.
        return cls(aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), prefix)

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    def _index_key(self, field: str, value: str) -> str:
        return f"{self._prefix}ix:{field}:{value}"

    def _contact_keys(self, contact_id: str) -> list[str]:
        base = f"{self._prefix}contact:{contact_id}"
        return [base, f"{base}:ix"]

    async def resolve(self, identifiers: Sequence[Identifier]) -> Lookup:
        """The first identifier (in priority order) that names a known contact."""
        return (await self.resolve_many([identifiers]))[0]

    async def resolve_many(self, batch: Sequence[Sequence[Identifier]]) -> list[Lookup]:
        """One round trip for many events' identifiers."""
        keys = [self._index_key(i.field, i.value) for idents in batch for i in idents]
        values = await self._redis.mget(keys) if keys else []
        results: list[Lookup] = []
        position = 0
        for idents in batch:
            found = values[position : position + len(idents)]
            position += len(idents)
            if not idents:
                results.append(None)
                continue
            match = next(
                (
                    Match(v.decode() if isinstance(v, bytes) else v, i)
                    for i, v in zip(idents, found, strict=True)
                    if v
                ),
                None,
            )
            results.append(match or NoMatch(tuple(idents)))
        return results

    async def upsert_many(self, contacts: Iterable[Contact]) -> int:
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
        await self._upsert(keys=self._contact_keys(contact_id), args=[contact_id, ""])

    async def get(self, contact_id: str) -> dict[str, str] | None:
        raw = await self._redis.get(self._contact_keys(contact_id)[0])
        return None if raw is None else codec.loads(raw)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
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
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
