"""Domain values that cross into Step Functions, DynamoDB and JSON, and the API's views (pure).

A photo's record is the dict of a Photo's fields plus what the analysis found (`bibs`, `face_ids`,
`face_count`, and `bibs_error` / `faces_error` when a step fell back). How records are keyed in the
table is the repository's business (chalicelib.adapters.table); nothing here knows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

STATUS_PROCESSED = "PROCESSED"
STATUS_FAILED = "FAILED"

# What a search result shows: the fields a bib listing carries so a bib page needs no second read.
DISPLAY_FIELDS = (
    "photo_id",
    "bucket",
    "org_id",
    "event_id",
    "processed_key",
    "grid_key",
    "width",
    "height",
    "thumbhash",
    "bibs",
    "photographer",
    "captured_at",
    "original_filename",
)


def iso_utc(moment: datetime) -> str:
    """Return `moment` as ISO 8601 UTC with a Z suffix (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """Return the aware datetime an ISO 8601 string denotes (naive is taken as UTC)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RawObject:
    """One uploaded object version: the input of a pipeline execution."""

    bucket: str
    key: str
    version_id: str | None  # set when the bucket is versioned: Preprocess reads exactly this version
    etag: str | None
    size: int
    uploaded_at: str  # ISO 8601 UTC, the S3 event time

    @property
    def version(self) -> str:
        """What identifies this upload of the key: version id, else ETag, else the upload time."""
        return self.version_id or self.etag or self.uploaded_at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RawObject:
        return cls(
            bucket=str(data["bucket"]),
            key=str(data["key"]),
            version_id=data.get("version_id") or None,
            etag=data.get("etag") or None,
            size=int(data.get("size") or 0),
            uploaded_at=str(data["uploaded_at"]),
        )


@dataclass(frozen=True)
class Photo:
    """A processed photo: Preprocess's output, and the PHOTO item's core."""

    photo_id: str
    org_id: str
    event_id: str
    bucket: str
    raw_key: str
    processed_key: str
    original_filename: str
    width: int
    height: int
    size: int  # processed JPEG bytes
    thumbhash: str
    captured_at: str  # ISO 8601 UTC (capture time, else upload time)
    uploaded_at: str
    photographer: str | None = None
    content_sha256: str | None = None  # hex SHA-256 of the uploaded bytes
    raw_version: str | None = None  # RawObject.version of the upload: a reprocess names the same one
    grid_key: str | None = None  # the grid rendition (None: processed before there was one)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Photo:
        names = {f.name for f in fields(cls)}
        values = {name: data[name] for name in names if name in data}
        for name in ("width", "height", "size"):
            values[name] = int(values[name])
        return cls(**values)


@dataclass(frozen=True)
class Analysis:
    """What DetectText and IndexFaces found; an `*_error` says why a step fell back to nothing."""

    bibs: tuple[str, ...] = ()
    face_ids: tuple[str, ...] = ()
    bibs_error: str | None = None
    faces_error: str | None = None
    # bib -> the face id of the runner wearing it (domain.linking), for face matches in bib search.
    links: dict[str, str] = field(default_factory=dict)
    # Reads a start list did not admit, kept for review; and near misses it corrected.
    unlisted_bibs: tuple[str, ...] = ()
    corrections: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Failure:
    """Why a photo's processing failed (Step Functions' Error and Cause)."""

    error: str
    cause: str
    failed_at: str
    extra: dict[str, Any] = field(default_factory=dict)


def photo_view(item: dict[str, Any], url_for: Callable[[dict[str, Any], str], str]) -> dict[str, Any]:
    """Return the API's Photo for a photo record (or a bib listing's copy of one).

    `url_for(item, key)` gives an object's URL. A photo processed before grid renditions existed
    has its full-size copy as `thumb_url` too, until it is reprocessed.
    """
    return {
        "photo_id": item["photo_id"],
        "org_id": item["org_id"],
        "event_id": item["event_id"],
        "status": STATUS_PROCESSED,
        "url": url_for(item, item["processed_key"]),
        "thumb_url": url_for(item, item.get("grid_key") or item["processed_key"]),
        "width": int(item["width"]),
        "height": int(item["height"]),
        "thumbhash": item["thumbhash"],
        "bibs": list(item.get("bibs") or []),
        "photographer": item.get("photographer"),
        "captured_at": item["captured_at"],
        "original_filename": item["original_filename"],
    }


def failed_view(item: dict[str, Any]) -> dict[str, Any]:
    """Return the API's FailedPhoto for a failure record: what went wrong and with which file."""
    return {
        "photo_id": item["photo_id"],
        "org_id": item["org_id"],
        "event_id": item["event_id"],
        "status": STATUS_FAILED,
        "original_filename": item["original_filename"],
        "failed_at": item["failed_at"],
        "reason": {"code": item["error"], "message": item["cause"]},
    }


@dataclass(frozen=True)
class EventSettings:
    """What an organiser sets on an event (PUT /orgs/{org}/events/{event})."""

    name: str
    date: str  # YYYY-MM-DD, the race day
    published: bool = False
    # False: bib-only; IndexFaces is skipped and selfie search is refused.
    faces_enabled: bool = True
    # Days after the race day when the event's face collection is deleted (None: kept).
    retention_days: int | None = None
    # Per-event bib rules; None falls back to the stage's BIB_* settings.
    bib_pattern: str | None = None
    bib_strip_prefix: bool | None = None
    bib_min_confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{name: data[name] for name in names if name in data})


@dataclass(frozen=True)
class FaceBox:
    """A detected face: its bounding box as fractions of the image, and the detection confidence."""

    left: float
    top: float
    width: float
    height: float
    confidence: float

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True)
class IndexedFace:
    """A face IndexFaces added to a collection, and where it is in the photo."""

    face_id: str
    box: FaceBox

    def to_dict(self) -> dict[str, Any]:
        return {"face_id": self.face_id, "box": asdict(self.box)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexedFace:
        box = data["box"]
        return cls(
            face_id=str(data["face_id"]),
            box=FaceBox(*(float(box[name]) for name in ("left", "top", "width", "height", "confidence"))),
        )


@dataclass(frozen=True)
class FaceMatch:
    face_id: str
    external_image_id: str | None
    similarity: float


@dataclass(frozen=True)
class FaceSearch:
    """What one face search answers: the face it searched with and the faces that matched it."""

    searched: FaceBox
    matches: tuple[FaceMatch, ...]
