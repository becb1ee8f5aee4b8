"""Kubernetes timestamps: RFC 3339 in UTC, as the API server writes them (whole seconds, "Z")."""

from __future__ import annotations

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_time(value: str | None) -> datetime | None:
    """A timestamp field, or None when absent; ValueError when it is not RFC 3339."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def format_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime(TIME_FORMAT) if moment else None


def format_precise_time(moment: datetime) -> str:
    """Microseconds kept (for our own status fields: the API's whole seconds would lose ordering)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)
