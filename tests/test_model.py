"""Domain values: round trips through dicts, and ISO 8601 times."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain.model import Photo, iso_utc, parse_iso


def make_photo(**overrides) -> Photo:
    values: dict[str, object] = dict(  # noqa: C408 - reads as keyword arguments
        photo_id="01JTB2Y4X0ABCDEFGHJKMNPQRS",
        org_id="acme",
        event_id="run-5k",
        bucket="photos",
        raw_key="acme/run-5k/raw/IMG_1.jpg",
        processed_key="acme/run-5k/processed/01JTB2Y4X0ABCDEFGHJKMNPQRS.jpg",
        original_filename="IMG_1.jpg",
        width=2048,
        height=1365,
        size=123456,
        thumbhash="1QcSHQRnh493V4dIh4eXh1h4kJUI",
        captured_at="2025-05-04T08:15:30Z",
        uploaded_at="2025-05-04T09:00:00Z",
        photographer="snap.shooter",
    )
    values.update(overrides)
    return Photo(**values)


def test_photo_round_trips_through_a_dict():
    photo = make_photo()
    assert Photo.from_dict({**photo.to_dict(), "extra": 1}) == photo


def test_iso_utc_round_trips():
    moment = datetime(2025, 5, 4, 8, 15, 30, 250000, tzinfo=UTC)
    assert iso_utc(moment) == "2025-05-04T08:15:30.250Z"
    assert parse_iso(iso_utc(moment)) == moment
    assert iso_utc(datetime(2025, 5, 4, 8, 15, 30)) == "2025-05-04T08:15:30Z"
