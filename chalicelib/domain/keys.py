"""S3 key layout and identifier rules (pure).

Raw uploads:     {org_id}/{event_id}/raw/{filename...}   (the filename may contain '/')
Processed copy:  {org_id}/{event_id}/processed/{photo_id}.jpg
Grid rendition:  {org_id}/{event_id}/processed/{photo_id}.grid.webp   (or .jpg, by GRID_FORMAT)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from chalicelib.domain.errors import InvalidKey

RAW_FOLDER = "raw"
PROCESSED_FOLDER = "processed"
# The suffixes the bucket notifies for (infra/resources.yaml, either case; tests compare them).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".gif")
_UPLOAD_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9 ._-]")
_MAX_FILENAME = 200

# Organisation and event ids: letters, digits, '-', '_' and '.', 1-64 characters, starting with a
# letter or digit. They become parts of S3 keys, DynamoDB keys and collection ids, so they must not
# contain the '#' and '/' separators those use.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# The ExternalImageId of a face a runner indexed to opt out of face search: photo ids are 26
# characters of upper-case Crockford base32, so no photo's faces can carry it.
OPTED_OUT_IMAGE_ID = "opted-out"

# Rekognition collection ids allow [a-zA-Z0-9_.\-] and at most 255 characters.
_COLLECTION_DISALLOWED = re.compile(r"[^A-Za-z0-9_.\-]")
_COLLECTION_MAX = 255


@dataclass(frozen=True)
class RawKey:
    org_id: str
    event_id: str
    filename: str

    @property
    def key(self) -> str:
        return f"{self.org_id}/{self.event_id}/{RAW_FOLDER}/{self.filename}"

    @property
    def original_filename(self) -> str:
        """The last segment of the filename, as the photographer named the file."""
        return self.filename.rsplit("/", 1)[-1]

    @property
    def upload_id(self) -> str | None:
        """The upload id of a file uploaded through the API (`raw/{upload_id}/{name}`), else None."""
        first, slash, _ = self.filename.partition("/")
        return first if slash and _UPLOAD_ID.fullmatch(first) else None


def decode_event_key(key: str) -> str:
    """Return an S3 event notification key decoded ('+' is a space, %XX escapes)."""
    return unquote_plus(key)


def is_valid_id(value: str) -> bool:
    """Return True if `value` is a valid organisation or event id."""
    return ID_PATTERN.fullmatch(value) is not None


def parse_raw_key(key: str) -> RawKey:
    """Return the parts of a raw upload key; raise InvalidKey if it is not `*/*/raw/*`."""
    parts = key.split("/", 3)
    if len(parts) != 4 or parts[2] != RAW_FOLDER or not parts[3] or parts[3].endswith("/"):
        raise InvalidKey(f"not a raw upload key ({{org}}/{{event}}/raw/{{file}}): {key!r}")
    org_id, event_id, _, filename = parts
    for label, value in (("organisation", org_id), ("event", event_id)):
        if not is_valid_id(value):
            raise InvalidKey(f"invalid {label} id {value!r} in key {key!r}")
    return RawKey(org_id=org_id, event_id=event_id, filename=filename)


def upload_key(org_id: str, event_id: str, upload_id: str, filename: str) -> str:
    """Return the raw key an API upload goes to: its id keeps equal file names apart."""
    return f"{org_id}/{event_id}/{RAW_FOLDER}/{upload_id}/{filename}"


def safe_filename(name: str, extension: str) -> str:
    """Return the last path segment of `name` made key-safe, ending in `extension` (e.g. ".jpg").

    Characters outside letters, digits, space, `.`, `_` and `-` become `_`; the bucket notifies
    only for image suffixes, so a name without one gets `extension` appended.
    """
    base = _UNSAFE_NAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .") or "photo"
    base = base[:_MAX_FILENAME]
    if not base.lower().endswith(IMAGE_SUFFIXES):
        base = base[: _MAX_FILENAME - len(extension)] + extension
    return base


def processed_key(org_id: str, event_id: str, photo_id: str) -> str:
    """Return the S3 key of a photo's processed JPEG."""
    return f"{org_id}/{event_id}/{PROCESSED_FOLDER}/{photo_id}.jpg"


def grid_key(org_id: str, event_id: str, photo_id: str, suffix: str) -> str:
    """Return the S3 key of a photo's grid rendition (`suffix`: its format's, e.g. "webp")."""
    return f"{org_id}/{event_id}/{PROCESSED_FOLDER}/{photo_id}.grid.{suffix}"


def normalise_handle(handle: str | None) -> str | None:
    """Return a photographer handle without '@' and surrounding space, lowercased; None if empty."""
    if handle is None:
        return None
    cleaned = handle.strip().lstrip("@").strip().lower()
    return cleaned or None


_HANDLE = re.compile(r"[^\s#/\\\x00-\x1f\x7f]{1,64}")


def is_valid_handle(handle: str) -> bool:
    """Return True if a normalised handle can key the photographer index (1-64 chars, no '#', '/')."""
    return _HANDLE.fullmatch(handle) is not None


def collection_id(prefix: str, org_id: str, event_id: str) -> str:
    """Return the Rekognition face collection id of an event in a stage (`prefix`, e.g. snaprace-prod).

    `{prefix}.{len(org)}.{org}.{event}`: the organisation's length makes the id injective although
    ids may contain `.`, `-` and `_` (so `a-b`/`c` and `a`/`b-c` never share a collection), and the
    stage's prefix keeps dev and prod apart in one account (and lets IAM grant one stage's
    collections). Valid ids need no escaping; the longest is 20 + 133 characters, under 255.
    """
    name = f"{prefix}.{len(org_id)}.{org_id}.{event_id}"
    if _COLLECTION_DISALLOWED.search(name) or len(name) > _COLLECTION_MAX:
        raise ValueError(f"not a valid collection id: {name!r}")
    return name
