"""Dead-letter reason codes: a stable contract for operators and downstream tooling.

A code, once published, keeps its meaning; new codes may be added, none renamed.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    #: The value is not JSON (including bytes that are not UTF-8).
    MALFORMED_JSON = "malformed_json"
    #: JSON, but not a Generate-event object (no eventTypeKey, params not a list of name/value...).
    INVALID_EVENT = "invalid_event"
    #: The record is larger than PROCESSOR_MAX_EVENT_BYTES.
    TOO_LARGE = "too_large"
    #: The value nests deeper than PROCESSOR_MAX_DEPTH.
    TOO_DEEP = "too_deep"
    #: eventTypeKey is not one of orderCreated, orderUpdated, orderDelivered, orderCancelled.
    UNSUPPORTED_EVENT_TYPE = "unsupported_event_type"
    #: A required param is missing; the detail names it.
    MISSING_REQUIRED = "missing_required"
    #: A param has the wrong type or value (status, date, totalCost...); the detail names it.
    INVALID_FIELD = "invalid_field"
    #: An item lacks a required field or has a bad one; the detail names the index and field.
    INVALID_ITEM = "invalid_item"
    #: totalCost differs from the sum of cost x quantity (PROCESSOR_TOTAL_MISMATCH=reject only).
    TOTAL_MISMATCH = "total_mismatch"
    #: orderDelivered / orderCancelled for an order the processor has never seen.
    UNKNOWN_ORDER = "unknown_order"
    #: The event carries no contact identifier at all.
    MISSING_CONTACT = "missing_contact"
    #: The event carries identifiers, but none matches a contact in the directory.
    UNKNOWN_CONTACT = "unknown_contact"
    #: A record on the contacts topic that is not a valid contact.
    INVALID_CONTACT = "invalid_contact"
    #: A bug of ours met this input; the detail holds the exception. Kept, never lost.
    PROCESSING_ERROR = "processing_error"
