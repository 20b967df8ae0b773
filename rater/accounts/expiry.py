"""A card's expiry: valid through its last day, so it expires at the next midnight UTC
(docs/DESIGN.md section 1). The portal and the CLI show and take the last valid day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def expiry_instant(day: date | None) -> datetime | None:
    """Cards are valid through their last day: they expire at the next midnight UTC."""
    if day is None:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def last_valid_day(expires: datetime | None) -> date | None:
    """The inverse of expiry_instant: the last day a card may be used (UTC)."""
    if expires is None:
        return None
    return (expires.astimezone(UTC) - timedelta(microseconds=1)).date()
