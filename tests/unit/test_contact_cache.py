"""The contact match cache: bounded, expiring, on an injected clock."""

from __future__ import annotations

from processor.directory import ContactCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_match_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = ContactCache(size=10, ttl=30, clock=clock)
    cache.put("ix:email:a@example.com", "c-1")
    clock.now = 29.9
    assert cache.get("ix:email:a@example.com") == "c-1"
    clock.now = 30.1
    assert cache.get("ix:email:a@example.com") is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = ContactCache(size=2, ttl=30, clock=Clock())
    cache.put("a", "c-a")
    cache.put("b", "c-b")
    assert cache.get("a") == "c-a"  # now b is the oldest
    cache.put("c", "c-c")
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("c-a", "c-c")


def test_size_zero_or_ttl_zero_turns_it_off() -> None:
    for cache in (ContactCache(size=0, ttl=30), ContactCache(size=10, ttl=0)):
        cache.put("a", "c-a")
        assert cache.get("a") is None
