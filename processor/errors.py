"""The exception tree.

ProcessorError
├── Rejected            an input the rules drop; becomes a dead letter, never a crash
├── ConfigError         a setting is wrong; the command exits with a clear message
└── Unavailable         Kafka or Redis cannot be reached; ``retriable`` says whether waiting helps
"""

from __future__ import annotations

from processor.reasons import Reason


class ProcessorError(Exception):
    """Base of every error this package raises on purpose."""


class Rejected(ProcessorError):
    """The input breaks a rule: it is dead-lettered with ``reason`` and a readable ``detail``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        # Filled in once parsing got that far, so a dead letter can say which order it was.
        self.event_type: str | None = None
        self.external_order_id: str | None = None

    def detached(self) -> Rejected:
        """This rejection without the frames it was raised through, to be kept after its
        ``except`` block: its traceback (and its context's: a ``raise ... from None`` keeps the
        context) holds those frames, and with them whatever holds the rejection, a reference
        cycle that only the cyclic GC frees, in pauses of up to 100 ms (bench/PROFILE.md)."""
        self.__traceback__ = self.__context__ = self.__cause__ = None
        return self


class ConfigError(ProcessorError):
    """A setting or argument cannot work."""


class Unavailable(ProcessorError):
    """A server we depend on does not answer."""

    retriable = True
