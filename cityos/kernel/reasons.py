"""Reason codes of refused events: stable strings operators filter, alert and replay on."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an event was dead-lettered. Stable codes: operators filter and alert on them."""

    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NESTING_TOO_DEEP = "nesting_too_deep"
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE_NUMBER = "non_finite_number"
    NUL_CHARACTER = "nul_character"
    INVALID_UNICODE = "invalid_unicode"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_EVENT_TIME = "invalid_event_time"
    FUTURE_EVENT_TIME = "future_event_time"
    UNKNOWN_DATASET = "unknown_dataset"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_RECORD_KEY = "missing_record_key"
    WRONG_DEPARTMENT = "wrong_department"
