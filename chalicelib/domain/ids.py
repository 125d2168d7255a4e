"""Derived identifiers (pure): photo ids and Step Functions execution names.

Ids are derived, never random, so that a retry or a redelivered message lands on the same record.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from ulid import ULID

# A capture time later than the upload by more than this is a wrong camera clock (EXIF local time
# read as UTC can be up to 14 hours ahead; anything beyond a day is not a timezone slip).
_MAX_CLOCK_AHEAD = timedelta(days=1)
_ULID_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ULID_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def photo_id(moment: datetime, digest: bytes) -> str:
    """Return the ULID whose time part is `moment` (ms) and whose random part is `digest`[:10].

    Sorting photo ids sorts photos by capture time; equal inputs always give the same id.
    """
    if len(digest) < 10:
        raise ValueError("digest must have at least 10 bytes")
    millis = int(_as_utc(moment).timestamp() * 1000)
    millis = min(max(millis, 0), (1 << 48) - 1)
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + digest[:10]))


def content_digest(data: bytes) -> bytes:
    """Return the SHA-256 of a raw object's bytes."""
    return hashlib.sha256(data).digest()


def object_digest(bucket: str, key: str, version: str) -> bytes:
    """Return the SHA-256 identifying one version of an S3 object (version id or ETag)."""
    return hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).digest()


def capture_moment(captured_at: datetime | None, uploaded_at: datetime) -> datetime:
    """Return the time that orders a photo: its capture time if plausible, else the upload time."""
    if captured_at is None:
        return uploaded_at
    captured_at = _as_utc(captured_at)
    if captured_at < _ULID_EPOCH or captured_at > _as_utc(uploaded_at) + _MAX_CLOCK_AHEAD:
        return uploaded_at
    return captured_at


def execution_name(bucket: str, key: str, version: str) -> str:
    """Return the Step Functions execution name for one version of a raw object.

    64 hex characters: within the 80-character limit and free of characters names forbid.
    """
    return object_digest(bucket, key, version).hex()


def reprocess_execution_name(bucket: str, key: str, generation: int) -> str:
    """Return the execution name of a photo's reprocessing run `generation` (1, 2, ...).

    A retried reprocess request asks for the same generation again, so it starts nothing new.
    """
    return object_digest(bucket, key, f"generation {generation}").hex()


def is_photo_id(value: str) -> bool:
    """Return True if `value` looks like a photo id (a canonical ULID)."""
    return _ULID_ID.fullmatch(value) is not None


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
