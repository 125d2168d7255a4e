"""Events: organisers create and publish them; the public sees only published ones.

`EventGate` answers "may the public see this event?" for every public route. It keeps each answer
for a short time (EVENT_CACHE_SECONDS), so a warm API container reads the event once, not on
every page; the trade-off is that (un)publishing takes up to that long to reach every container.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

from chalicelib.adapters.table import PhotoTable
from chalicelib.domain import keys
from chalicelib.domain.bibs import BibRules
from chalicelib.domain.errors import (
    ConfigurationError,
    EventDeleted,
    EventNotFound,
    FacesDisabled,
    FacesExpired,
    InvalidEventSettings,
    InvalidId,
)
from chalicelib.domain.model import EventSettings

ACTIVE, DELETING, DELETED = "ACTIVE", "DELETING", "DELETED"
_MAX_NAME = 200
_MAX_PATTERN = 100
_MAX_RETENTION_DAYS = 3650
_FIELDS = {
    "name",
    "date",
    "published",
    "faces_enabled",
    "retention_days",
    "bib_rules",
}
_BIB_FIELDS = {"pattern", "strip_prefix", "min_confidence"}


def check_ids(org_id: str, event_id: str) -> None:
    """Raise InvalidId unless both ids are well formed."""
    for label, value in (("organisation", org_id), ("event", event_id)):
        if not keys.is_valid_id(value):
            raise InvalidId(
                f"{value!r} is not a valid {label} id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
            )


def parse_settings(body: Any) -> EventSettings:
    """Return the EventSettings a PUT body describes; raise InvalidEventSettings naming the problem."""
    if not isinstance(body, dict):
        raise InvalidEventSettings("send a JSON object with name and date (and optionally published, ...)")
    unknown = set(body) - _FIELDS
    if unknown:
        raise InvalidEventSettings(f"unknown fields: {', '.join(sorted(unknown))}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise InvalidEventSettings(f"name must be a non-empty string of at most {_MAX_NAME} characters")
    raw_date = body.get("date")
    try:
        race_day = date.fromisoformat(raw_date) if isinstance(raw_date, str) and len(raw_date) == 10 else None
    except ValueError:
        race_day = None
    if race_day is None:
        raise InvalidEventSettings(f"date must be the race day as YYYY-MM-DD, got {raw_date!r}")
    settings = EventSettings(name=name.strip(), date=race_day.isoformat())
    for flag in ("published", "faces_enabled"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise InvalidEventSettings(f"{flag} must be true or false")
            settings = replace(settings, **{flag: body[flag]})
    retention = body.get("retention_days")
    if retention is not None:
        if (
            isinstance(retention, bool)
            or not isinstance(retention, int)
            or not 0 <= retention <= _MAX_RETENTION_DAYS
        ):
            raise InvalidEventSettings(
                f"retention_days must be a whole number of days from 0 to {_MAX_RETENTION_DAYS}"
            )
        settings = replace(settings, retention_days=retention)
    return _with_bib_rules(settings, body.get("bib_rules"))


def put_event(
    org_id: str, event_id: str, body: Any, *, table: PhotoTable, now: str, gate: EventGate
) -> dict[str, Any]:
    """Create or update an event; return its organiser view. Raises EventDeleted while deleting."""
    check_ids(org_id, event_id)
    settings = parse_settings(body)
    current = table.event(org_id, event_id)
    if current is not None and current.get("status") == DELETING:
        raise EventDeleted(f"event {org_id}/{event_id} is being deleted; try again when it is gone")
    record = table.put_event(org_id, event_id, settings, now=now)
    gate.forget(org_id, event_id)
    return organiser_view(record)


def organiser_event(org_id: str, event_id: str, *, table: PhotoTable) -> dict[str, Any]:
    """Return the organiser's view of an event (settings, status, counts); raise EventNotFound."""
    check_ids(org_id, event_id)
    record = table.event(org_id, event_id)
    if record is None:
        raise EventNotFound(f"no event {org_id}/{event_id}")
    return organiser_view(record)


def public_event(org_id: str, event_id: str, *, table: PhotoTable, gate: EventGate) -> dict[str, Any]:
    """Return what the public sees of a published event: name, date, counts, photographers."""
    record = gate.require_published(org_id, event_id)
    fresh = table.event(org_id, event_id) or record  # counts change; the gate's copy may be older
    return {
        "org_id": org_id,
        "event_id": event_id,
        "name": fresh["name"],
        "date": fresh["date"],
        "photo_count": int(fresh.get("photo_count") or 0),
        "photographers": table.photographer_counts(org_id, event_id),
        "faces_enabled": bool(fresh.get("faces_enabled", True)),
        "faces_available": faces_available(fresh),
    }


def published_events(*, table: PhotoTable) -> list[dict[str, Any]]:
    """Return the published events of every organisation, latest race day first."""
    found = [
        {
            "org_id": r["org_id"],
            "event_id": r["event_id"],
            "name": r["name"],
            "date": r["date"],
            "photo_count": int(r.get("photo_count") or 0),
        }
        for r in table.events()
        if r.get("published") and r.get("status", ACTIVE) == ACTIVE
    ]
    return sorted(found, key=lambda e: (e["date"], e["org_id"], e["event_id"]), reverse=True)


def organiser_view(record: dict[str, Any]) -> dict[str, Any]:
    """Return the organiser's view of an event record."""
    bib_rules = {
        name: record[f"bib_{name}"] for name in sorted(_BIB_FIELDS) if record.get(f"bib_{name}") is not None
    }
    return {
        "org_id": record["org_id"],
        "event_id": record["event_id"],
        "name": record["name"],
        "date": record["date"],
        "published": bool(record.get("published")),
        "faces_enabled": bool(record.get("faces_enabled", True)),
        "retention_days": record.get("retention_days"),
        "bib_rules": bib_rules,
        "status": record.get("status", ACTIVE),
        "photo_count": int(record.get("photo_count") or 0),
        "faces_deleted_at": record.get("faces_deleted_at"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
    }


def bib_rules_for(record: dict[str, Any] | None, defaults: BibRules) -> BibRules:
    """Return the stage's bib rules with the event's own overrides applied."""
    if not record:
        return defaults
    changes: dict[str, Any] = {}
    if record.get("bib_pattern"):
        changes["pattern"] = record["bib_pattern"]
    if record.get("bib_strip_prefix") is not None:
        changes["strip_prefix"] = bool(record["bib_strip_prefix"])
    if record.get("bib_min_confidence") is not None:
        changes["min_confidence"] = float(record["bib_min_confidence"])
    return replace(defaults, **changes) if changes else defaults


def faces_enabled(record: dict[str, Any] | None) -> bool:
    """True unless the event is bib-only (an unregistered event indexes faces: the stage default)."""
    return bool((record or {}).get("faces_enabled", True))


def faces_available(record: dict[str, Any]) -> bool:
    """True when a selfie search can run: faces enabled and the collection not yet deleted."""
    return faces_enabled(record) and not record.get("faces_deleted_at")


def require_faces(record: dict[str, Any]) -> None:
    """Raise FacesDisabled (bib-only event) or FacesExpired (collection deleted) before any search."""
    if not faces_enabled(record):
        raise FacesDisabled("this event is bib-only: search by bib number instead")
    if record.get("faces_deleted_at"):
        raise FacesExpired("face search for this event ended when its retention period passed; search by bib")


class EventGate:
    """Which events the public may see, each answer kept for `ttl` seconds."""

    def __init__(self, table: PhotoTable, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = table
        self._ttl = ttl
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def require_published(self, org_id: str, event_id: str) -> dict[str, Any]:
        """Return the event's record; raise InvalidId, or EventNotFound unless it is published."""
        check_ids(org_id, event_id)
        key = (org_id, event_id)
        now = self._clock()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            record = cached[1]
        else:
            record = self._table.event(org_id, event_id)
            with self._lock:
                self._answers[key] = (now, record)
        if record is None or not record.get("published") or record.get("status", ACTIVE) != ACTIVE:
            raise EventNotFound(f"no published event {org_id}/{event_id}")
        return record

    def forget(self, org_id: str, event_id: str) -> None:
        """Drop the cached answer for an event (after this container changed it)."""
        with self._lock:
            self._answers.pop((org_id, event_id), None)


def _with_bib_rules(settings: EventSettings, raw: Any) -> EventSettings:
    if raw is None:
        return settings
    if not isinstance(raw, dict) or set(raw) - _BIB_FIELDS:
        raise InvalidEventSettings(f"bib_rules may hold only {', '.join(sorted(_BIB_FIELDS))}")
    pattern = raw.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern or len(pattern) > _MAX_PATTERN:
            raise InvalidEventSettings(
                f"bib_rules.pattern must be a regular expression of at most {_MAX_PATTERN} characters"
            )
        try:
            re.compile(pattern)
            BibRules(pattern=pattern)
        except (re.error, ConfigurationError) as exc:
            raise InvalidEventSettings(f"bib_rules.pattern is not a regular expression: {exc}") from exc
    strip_prefix = raw.get("strip_prefix")
    if strip_prefix is not None and not isinstance(strip_prefix, bool):
        raise InvalidEventSettings("bib_rules.strip_prefix must be true or false")
    confidence = raw.get("min_confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 100
    ):
        raise InvalidEventSettings("bib_rules.min_confidence must be a number from 0 to 100")
    return replace(
        settings,
        bib_pattern=pattern,
        bib_strip_prefix=strip_prefix,
        bib_min_confidence=None if confidence is None else float(confidence),
    )
