"""The one way the API writes a moment: RFC 3339, UTC, microseconds, `Z` (`2026-01-15T09:30:00.123456Z`)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """A naive moment is UTC (ClickHouse's DateTime64 columns come back naive, in UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_text(text: str) -> str:
    """An ISO 8601 timestamp as received (an event's `timestamp`), rewritten by `rfc3339`."""
    return rfc3339(datetime.fromisoformat(text))
