"""Derived ids: photo ids follow capture time; equal inputs give equal ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain import ids

UTC = UTC


def test_photo_id_is_stable_for_the_same_photo():
    moment = datetime(2025, 5, 4, 8, 15, 30, tzinfo=UTC)
    digest = ids.content_digest(b"raw bytes")
    assert ids.photo_id(moment, digest) == ids.photo_id(moment, digest)
    assert ids.is_photo_id(ids.photo_id(moment, digest))


def test_photo_ids_sort_by_capture_time():
    digest_a, digest_b = ids.content_digest(b"zzz"), ids.content_digest(b"aaa")
    earlier = ids.photo_id(datetime(2025, 5, 4, 8, 0, tzinfo=UTC), digest_a)
    later = ids.photo_id(datetime(2025, 5, 4, 8, 0, 0, 1000, tzinfo=UTC), digest_b)
    assert earlier < later


def test_different_content_at_the_same_moment_gets_different_ids():
    moment = datetime(2025, 5, 4, tzinfo=UTC)
    assert ids.photo_id(moment, ids.content_digest(b"a")) != ids.photo_id(moment, ids.content_digest(b"b"))


def test_naive_times_are_utc():
    digest = ids.content_digest(b"x")
    assert ids.photo_id(datetime(2025, 1, 1), digest) == ids.photo_id(
        datetime(2025, 1, 1, tzinfo=UTC), digest
    )


def test_capture_time_is_used_when_plausible():
    uploaded = datetime(2025, 5, 4, 12, tzinfo=UTC)
    captured = datetime(2025, 5, 4, 9, tzinfo=UTC)
    assert ids.capture_moment(captured, uploaded) == captured


def test_upload_time_replaces_missing_or_impossible_capture_times():
    uploaded = datetime(2025, 5, 4, 12, tzinfo=UTC)
    assert ids.capture_moment(None, uploaded) == uploaded
    assert ids.capture_moment(uploaded + timedelta(days=3), uploaded) == uploaded
    assert ids.capture_moment(datetime(1960, 1, 1, tzinfo=UTC), uploaded) == uploaded


def test_capture_time_a_few_hours_ahead_is_a_timezone_slip_and_kept():
    uploaded = datetime(2025, 5, 4, 12, tzinfo=UTC)
    assert ids.capture_moment(uploaded + timedelta(hours=9), uploaded) == uploaded + timedelta(hours=9)


def test_execution_name_is_derived_and_valid():
    name = ids.execution_name("bucket", "acme/e1/raw/a b+c 한.jpg", "etag1")
    assert name == ids.execution_name("bucket", "acme/e1/raw/a b+c 한.jpg", "etag1")
    assert name != ids.execution_name("bucket", "acme/e1/raw/a b+c 한.jpg", "etag2")
    assert len(name) <= 80 and name.isalnum()
