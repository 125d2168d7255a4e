"""Seed the table with real item shapes for API tests and benchmarks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from chalicelib import ids
from chalicelib.model import Analysis, Photo, bib_items, iso_utc, photo_item
from chalicelib.table import Table

START = datetime(2025, 5, 4, 8, 0, tzinfo=timezone.utc)


def make_photo(org_id: str, event_id: str, n: int, *, bucket: str = "photos", photographer: str | None = None,
               start: datetime = START) -> Photo:
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


def seed(table: Table, photos: list[tuple[Photo, tuple[str, ...]]]) -> None:
    """Write PHOTO and BIB_INDEX items as Fanout does, for (photo, bibs) pairs."""
    items = []
    for photo, bibs in photos:
        item = photo_item(photo, Analysis(bibs=bibs, face_ids=("face-1",)))
        items += [item, *bib_items(item)]
    table.write_batch(items)
