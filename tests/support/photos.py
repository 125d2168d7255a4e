"""Real photo records for API tests and benchmarks, written through the repository as Fanout does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.table import PhotoTable
from chalicelib.domain import ids
from chalicelib.domain.model import Analysis, EventSettings, Failure, Photo, iso_utc

START = datetime(2025, 5, 4, 8, 0, tzinfo=UTC)


def make_photo(
    org_id: str,
    event_id: str,
    n: int,
    *,
    bucket: str = "photos",
    photographer: str | None = None,
    start: datetime = START,
) -> Photo:
    """Return the n-th photo of an event, captured n seconds after `start`."""
    captured = start + timedelta(seconds=n)
    photo_id = ids.photo_id(captured, ids.content_digest(f"{org_id}/{event_id}/{n}".encode()))
    return Photo(
        photo_id=photo_id,
        org_id=org_id,
        event_id=event_id,
        bucket=bucket,
        raw_key=f"{org_id}/{event_id}/raw/IMG_{n:05d}.jpg",
        processed_key=f"{org_id}/{event_id}/processed/{photo_id}.jpg",
        original_filename=f"IMG_{n:05d}.jpg",
        width=2048,
        height=1365,
        size=400_000,
        thumbhash="1QcSHQRnh493V4dIh4eXh1h4kJUI",
        captured_at=iso_utc(captured),
        uploaded_at=iso_utc(captured + timedelta(minutes=5)),
        photographer=photographer,
    )


def publish(table: PhotoTable, org_id: str, event_id: str, **settings: Any) -> dict[str, Any]:
    """Create (or update) an event, published unless `published=False` is given; return its record."""
    values = {"name": f"{event_id} race", "date": "2025-05-04", "published": True, **settings}
    return table.put_event(org_id, event_id, EventSettings(**values), now="2025-05-01T09:00:00Z")


def seed(table: PhotoTable, photos: list[tuple[Photo, tuple[str, ...]]], *, published: bool = True) -> None:
    """Save (photo, bibs) pairs, each with one face, as Fanout does, in published events."""
    for org_id, event_id in dict.fromkeys((photo.org_id, photo.event_id) for photo, _ in photos):
        if table.event(org_id, event_id) is None:
            publish(table, org_id, event_id, published=published)
    for photo, bibs in photos:
        table.save_photo(photo, Analysis(bibs=bibs, face_ids=("face-1",)))


def record_failed(
    table: PhotoTable,
    org_id: str,
    event_id: str,
    n: int,
    *,
    error: str = "CorruptImage",
    cause: str = "JPEG is truncated",
    filename: str = "broken.jpg",
    bucket: str = "photos",
) -> str:
    """Record the failure of the n-th upload of an event, as RecordFailure does; return its photo id."""
    photo_id = make_photo(org_id, event_id, n).photo_id
    extra = {
        "bucket": bucket,
        "uploaded_at": "2025-05-04T08:59:00Z",
        "raw_size": 400,
        "raw_version": "etag-1",
    }
    failure = Failure(error=error, cause=cause, failed_at="2025-05-04T09:00:00Z", extra=extra)
    table.record_failure(org_id, event_id, photo_id, f"{org_id}/{event_id}/raw/{filename}", failure)
    return photo_id
