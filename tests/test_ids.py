"""Derived ids: photo ids follow capture time; equal inputs give equal ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

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


def _millis(photo_id: str) -> int:
    """The time part of a ULID: its first 10 Crockford base32 characters."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for character in photo_id[:10]:
        value = value * 32 + alphabet.index(character)
    return value


def test_the_photo_ids_time_part_is_the_moment_in_milliseconds():
    moment = datetime(2025, 5, 4, 8, 15, 30, 123000, tzinfo=UTC)

    assert _millis(ids.photo_id(moment, bytes(10))) == int(moment.timestamp()) * 1000 + 123


def test_a_moment_before_1970_gets_the_earliest_time_part():
    assert _millis(ids.photo_id(datetime(1969, 12, 31, 23, 59, tzinfo=UTC), bytes(10))) == 0
    assert _millis(ids.photo_id(datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), bytes(10))) == 1


def test_a_digest_needs_ten_bytes():
    moment = datetime(2025, 5, 4, tzinfo=UTC)

    assert ids.is_photo_id(ids.photo_id(moment, bytes(range(10))))
    with pytest.raises(ValueError):
        ids.photo_id(moment, bytes(9))


def test_an_aware_time_in_another_zone_gives_the_id_of_the_same_instant():
    in_utc = datetime(2025, 5, 4, 8, 0, tzinfo=UTC)
    in_paris = datetime(2025, 5, 4, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    digest = ids.content_digest(b"x")

    assert ids.photo_id(in_paris, digest) == ids.photo_id(in_utc, digest)
    assert ids.capture_moment(in_paris, in_utc) == in_utc


def test_naive_capture_and_upload_times_are_compared_as_utc():
    captured, uploaded = datetime(2025, 5, 4, 8, 0), datetime(2025, 5, 4, 9, 0)

    assert ids.capture_moment(captured, uploaded) == captured.replace(tzinfo=UTC)


def test_the_plausible_capture_window_includes_both_of_its_ends():
    uploaded = datetime(2025, 5, 4, 8, 0, tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    assert ids.capture_moment(epoch, uploaded) == epoch
    assert ids.capture_moment(uploaded + timedelta(days=1), uploaded) == uploaded + timedelta(days=1)
    later = uploaded + timedelta(days=1, microseconds=1)
    assert ids.capture_moment(later, uploaded) == uploaded


def test_execution_names_differ_for_each_bucket_key_version_and_generation():
    names = {
        ids.execution_name("b", "k", "v1"),
        ids.execution_name("b2", "k", "v1"),
        ids.execution_name("b", "k2", "v1"),
        ids.execution_name("b", "k", "v2"),
        ids.reprocess_execution_name("b", "k", 1),
        ids.reprocess_execution_name("b", "k", 2),
        ids.reprocess_execution_name("b2", "k", 1),
        ids.reprocess_execution_name("b", "k2", 1),
    }

    assert len(names) == 8
    assert ids.reprocess_execution_name("b", "k", 1) == ids.reprocess_execution_name("b", "k", 1)
    assert all(re.fullmatch(r"[0-9a-f]{64}", name) for name in names)
