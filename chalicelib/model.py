"""Domain values that cross into Step Functions, DynamoDB and JSON (pure).

Item shapes in the single table (every key is scoped by organisation AND event):

| item      | PK                                   | SK               | GSI1PK / GSI1SK                                       | GSI2PK / GSI2SK                          |
|-----------|--------------------------------------|------------------|-------------------------------------------------------|------------------------------------------|
| PHOTO     | ORG#{org}#EVT#{event}                | PHOTO#{photo_id} | ORG#{org}#EVT#{event}#PG#{handle} / PHOTO#{photo_id}  | -                                        |
| BIB_INDEX | ORG#{org}#EVT#{event}#BIB#{bib}      | PHOTO#{photo_id} | -                                                     | -                                        |
| FAILED    | ORG#{org}#EVT#{event}                | FAILED#{photo_id}| -                                                     | ORG#{org}#EVT#{event}#FAILED / FAILED#{id}|

Photo ids are ULIDs ordered by capture time, so `ScanIndexForward=False` on any of these partitions
lists newest capture first. Partition keys are matched exactly (never by prefix), so `run-5k` never
matches `run-5k-2025` and organisations sharing an event id never see each other's photos. A
BIB_INDEX item carries every field a search result shows, so a bib page is one Query.
FAILED items sit beside PHOTO items in the event partition under their own SK prefix, so a gallery
page is one Query on `begins_with(SK, "PHOTO#")`; a later successful run of the photo deletes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

PHOTO = "PHOTO"
BIB_INDEX = "BIB_INDEX"
STATUS_PROCESSED = "PROCESSED"
STATUS_FAILED = "FAILED"

# Fields copied onto BIB_INDEX items: what a search result shows.
DISPLAY_FIELDS = (
    "photo_id",
    "bucket",
    "org_id",
    "event_id",
    "processed_key",
    "width",
    "height",
    "thumbhash",
    "bibs",
    "photographer",
    "captured_at",
    "original_filename",
)


def event_pk(org_id: str, event_id: str) -> str:
    return f"ORG#{org_id}#EVT#{event_id}"


def bib_pk(org_id: str, event_id: str, bib: str) -> str:
    return f"{event_pk(org_id, event_id)}#BIB#{bib}"


def photographer_pk(org_id: str, event_id: str, handle: str) -> str:
    return f"{event_pk(org_id, event_id)}#PG#{handle}"


def failed_pk(org_id: str, event_id: str) -> str:
    return f"{event_pk(org_id, event_id)}#FAILED"


PHOTO_PREFIX = "PHOTO#"
FAILED_PREFIX = "FAILED#"


def photo_sk(photo_id: str) -> str:
    return f"{PHOTO_PREFIX}{photo_id}"


def failed_sk(photo_id: str) -> str:
    return f"{FAILED_PREFIX}{photo_id}"


def iso_utc(moment: datetime) -> str:
    """Return `moment` as ISO 8601 UTC with a Z suffix (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """Return the aware datetime an ISO 8601 string denotes (naive is taken as UTC)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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


@dataclass(frozen=True)
class Failure:
    """Why a photo's processing failed (Step Functions' Error and Cause)."""

    error: str
    cause: str
    failed_at: str
    extra: dict[str, Any] = field(default_factory=dict)


def photo_item(photo: Photo, analysis: Analysis) -> dict[str, Any]:
    """Return the PHOTO item for a processed photo."""
    item: dict[str, Any] = {
        "PK": event_pk(photo.org_id, photo.event_id),
        "SK": photo_sk(photo.photo_id),
        "type": PHOTO,
        "status": STATUS_PROCESSED,
        **photo.to_dict(),
        "bibs": list(dict.fromkeys(analysis.bibs)),
        "face_ids": list(analysis.face_ids),
        "face_count": len(analysis.face_ids),
    }
    if analysis.bibs_error:
        item["bibs_error"] = analysis.bibs_error
    if analysis.faces_error:
        item["faces_error"] = analysis.faces_error
    if photo.photographer:
        item["GSI1PK"] = photographer_pk(photo.org_id, photo.event_id, photo.photographer)
        item["GSI1SK"] = photo_sk(photo.photo_id)
    return _without_none(item)


def bib_items(photo_item_: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one BIB_INDEX item per bib of a PHOTO item, carrying the display fields."""
    display = {name: photo_item_[name] for name in DISPLAY_FIELDS if name in photo_item_}
    return [
        {
            "PK": bib_pk(photo_item_["org_id"], photo_item_["event_id"], bib),
            "SK": photo_item_["SK"],
            "type": BIB_INDEX,
            "bib": bib,
            **display,
        }
        for bib in dict.fromkeys(photo_item_["bibs"])  # one item per bib, even if listed twice
    ]


def failed_item(
    org_id: str, event_id: str, photo_id: str, raw_key: str, failure: Failure
) -> dict[str, Any]:
    """Return the FAILED item that records why a photo could not be processed."""
    sk = failed_sk(photo_id)
    return _without_none(
        {
            "PK": event_pk(org_id, event_id),
            "SK": sk,
            "type": PHOTO,
            "status": STATUS_FAILED,
            "photo_id": photo_id,
            "org_id": org_id,
            "event_id": event_id,
            "raw_key": raw_key,
            "original_filename": raw_key.rsplit("/", 1)[-1],
            "error": failure.error,
            "cause": failure.cause,
            "failed_at": failure.failed_at,
            **failure.extra,
            "GSI2PK": failed_pk(org_id, event_id),
            "GSI2SK": sk,
        }
    )


def _without_none(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if value is not None}


def photo_view(item: dict[str, Any], url: str) -> dict[str, Any]:
    """Return the API's Photo for a PHOTO or BIB_INDEX item."""
    return {
        "photo_id": item["photo_id"],
        "org_id": item["org_id"],
        "event_id": item["event_id"],
        "status": STATUS_PROCESSED,
        "url": url,
        "width": int(item["width"]),
        "height": int(item["height"]),
        "thumbhash": item["thumbhash"],
        "bibs": list(item.get("bibs") or []),
        "photographer": item.get("photographer"),
        "captured_at": item["captured_at"],
        "original_filename": item["original_filename"],
    }


def failed_view(item: dict[str, Any]) -> dict[str, Any]:  # failed_item() always writes these fields
    """Return the API's FailedPhoto for a FAILED item: what went wrong and with which file."""
    return {
        "photo_id": item["photo_id"],
        "org_id": item["org_id"],
        "event_id": item["event_id"],
        "status": STATUS_FAILED,
        "original_filename": item["original_filename"],
        "failed_at": item["failed_at"],
        "reason": {"code": item["error"], "message": item["cause"]},
    }
