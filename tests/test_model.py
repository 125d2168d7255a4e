"""Item shapes: keys scoped by organisation and event, display fields on bib items."""

from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.model import (
    DISPLAY_FIELDS,
    Analysis,
    Failure,
    Photo,
    bib_items,
    failed_item,
    iso_utc,
    parse_iso,
    photo_item,
)


def make_photo(**overrides) -> Photo:
    values = dict(
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


def test_photo_item_is_keyed_by_org_and_event():
    item = photo_item(make_photo(), Analysis(bibs=("1234",), face_ids=("f1", "f2")))
    assert item["PK"] == "ORG#acme#EVT#run-5k"
    assert item["SK"] == "PHOTO#01JTB2Y4X0ABCDEFGHJKMNPQRS"
    assert item["status"] == "PROCESSED"
    assert item["face_count"] == 2
    assert item["GSI1PK"] == "ORG#acme#EVT#run-5k#PG#snap.shooter"
    assert "GSI2PK" not in item


def test_photographer_partition_is_exact_so_event_prefixes_cannot_collide():
    short = photo_item(make_photo(event_id="run-5k"), Analysis())["GSI1PK"]
    longer = photo_item(make_photo(event_id="run-5k-2025"), Analysis())["GSI1PK"]
    assert not longer.startswith(short + "#") and short != longer


def test_photo_without_photographer_is_not_in_the_photographer_index():
    item = photo_item(make_photo(photographer=None), Analysis())
    assert "GSI1PK" not in item and "photographer" not in item


def test_bib_items_carry_the_display_fields_and_are_scoped_by_org():
    item = photo_item(make_photo(), Analysis(bibs=("1234", "0567")))
    bibs = bib_items(item)
    assert [b["PK"] for b in bibs] == ["ORG#acme#EVT#run-5k#BIB#1234", "ORG#acme#EVT#run-5k#BIB#0567"]
    for bib in bibs:
        assert bib["SK"] == item["SK"]
        assert bib["type"] == "BIB_INDEX"
        for name in DISPLAY_FIELDS:
            assert bib[name] == item[name]
    other_org = bib_items(photo_item(make_photo(org_id="other"), Analysis(bibs=("1234",))))
    assert other_org[0]["PK"] != bibs[0]["PK"]


def test_fallback_reasons_are_recorded_on_the_photo():
    item = photo_item(make_photo(), Analysis(bibs_error="ThrottlingException"))
    assert item["bibs_error"] == "ThrottlingException" and "faces_error" not in item


def test_failed_item_is_listed_in_the_failure_index():
    failure = Failure(error="CorruptImage", cause="truncated", failed_at="2025-05-04T09:00:00Z")
    item = failed_item("acme", "run-5k", "01JTB2Y4X0ABCDEFGHJKMNPQRS", "acme/run-5k/raw/x/IMG.jpg", failure)
    assert item["status"] == "FAILED"
    assert item["SK"] == "FAILED#01JTB2Y4X0ABCDEFGHJKMNPQRS"
    assert item["GSI2PK"] == "ORG#acme#EVT#run-5k#FAILED"
    assert item["original_filename"] == "IMG.jpg"
    assert (item["error"], item["cause"]) == ("CorruptImage", "truncated")


def test_photo_round_trips_through_a_dict():
    photo = make_photo()
    assert Photo.from_dict({**photo.to_dict(), "extra": 1}) == photo


def test_iso_utc_round_trips():
    moment = datetime(2025, 5, 4, 8, 15, 30, 250000, tzinfo=timezone.utc)
    assert iso_utc(moment) == "2025-05-04T08:15:30.250Z"
    assert parse_iso(iso_utc(moment)) == moment
    assert iso_utc(datetime(2025, 5, 4, 8, 15, 30)) == "2025-05-04T08:15:30Z"
