"""The pipeline steps: plain functions, dict in / dict out, dependencies passed as arguments.

Each is one Task state of statemachine.json; the dict shapes are the state machine's contract.
Execution input: RawObject.to_dict(). Preprocess's result sits at `$.photo`, the merged results of
DetectText and IndexFaces at `$.analysis.text` and `$.analysis.faces` (each with an `error` that
is null, or the Error/Cause a fallback caught), a caught error at `$.error`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import PhotoTable
from chalicelib.config import Settings
from chalicelib.domain import ids, imaging, keys
from chalicelib.domain.bibs import BibRead, TextBox, bib_reads
from chalicelib.domain.linking import link_faces
from chalicelib.domain.model import Analysis, Failure, IndexedFace, Photo, RawObject, iso_utc, parse_iso
from chalicelib.domain.runners import check_reads
from chalicelib.services import events, pacing, uploads

log = logging.getLogger(__name__)

PROCESSED_TAGS = {"folder": "processed"}
# A processed key names its photo id, which is derived from the bytes uploaded: what is stored
# under it does not change, so browsers and the CDN may keep it for a year without asking again.
IMMUTABLE = "public, max-age=31536000, immutable"
_MAX_CAUSE = 4000


def preprocess(
    event: dict[str, Any], *, storage: Storage, table: PhotoTable, settings: Settings
) -> dict[str, Any]:
    """Decode, orient, resize and store a raw upload; return the Photo as a dict.

    Bytes the event already has under another key are not processed again: the answer is then
    {"duplicate_of": photo_id} (the state machine ends there) and the upload follows that photo.
    Raises InvalidKey, RawObjectMissing, the InvalidImage family or ThrottlingException.
    """
    source = RawObject.from_dict(event)
    raw = keys.parse_raw_key(source.key)
    stored = storage.get_object(
        source.bucket, source.key, max_bytes=settings.max_upload_bytes, version_id=source.version_id
    )
    digest = ids.content_digest(stored.body)
    owner = table.content_owner(raw.org_id, raw.event_id, digest.hex())
    if owner is not None and owner["raw_key"] != source.key:
        return _duplicate(table, source.key, owner)
    image = imaging.process_image(
        stored.body,
        max_width=settings.max_width,
        jpeg_quality=settings.jpeg_quality,
        max_pixels=settings.max_image_pixels,
        grid_side=settings.grid_side,
        grid_format=settings.grid_format,
        grid_quality=settings.grid_quality,
    )
    moment = ids.capture_moment(image.captured_at, parse_iso(source.uploaded_at))
    photo_id = ids.photo_id(moment, digest)
    claim = {"photo_id": photo_id, "raw_key": source.key, "captured_at": iso_utc(moment)}
    owner = table.claim_content(raw.org_id, raw.event_id, digest.hex(), claim)
    if owner["raw_key"] != source.key:  # another upload of these bytes claimed them first
        return _duplicate(table, source.key, owner)
    photographer = _photographer(stored.metadata, source.key)
    photo = Photo(
        photo_id=photo_id,
        org_id=raw.org_id,
        event_id=raw.event_id,
        bucket=source.bucket,
        raw_key=source.key,
        processed_key=keys.processed_key(raw.org_id, raw.event_id, photo_id),
        original_filename=raw.original_filename,
        width=image.width,
        height=image.height,
        size=len(image.jpeg),
        thumbhash=image.thumbhash,
        captured_at=iso_utc(moment),
        uploaded_at=source.uploaded_at,
        photographer=photographer,
        content_sha256=digest.hex(),
        raw_version=source.version,
        grid_key=None
        if image.grid is None
        else keys.grid_key(raw.org_id, raw.event_id, photo_id, imaging.GRID_FORMATS[settings.grid_format][1]),
    )
    # Public through the CDN: nothing here names the raw upload (its key holds the file name).
    metadata = {"photo-id": photo_id, "thumb-hash": image.thumbhash}
    if photographer:
        metadata["photographer"] = photographer
    if image.grid is not None and photo.grid_key is not None:
        storage.put_object(
            source.bucket,
            photo.grid_key,
            image.grid.data,
            content_type=image.grid.content_type,
            metadata=metadata,
            tags=PROCESSED_TAGS,
            cache_control=IMMUTABLE,
        )
    storage.put_object(
        source.bucket,
        photo.processed_key,
        image.jpeg,
        content_type="image/jpeg",
        metadata=metadata,
        tags=PROCESSED_TAGS,
        cache_control=IMMUTABLE,
    )
    log.info(
        "preprocessed photo=%s key=%s size=%dx%d bytes=%d grid_bytes=%d",
        photo_id,
        source.key,
        image.width,
        image.height,
        len(image.jpeg),
        len(image.grid.data) if image.grid else 0,
    )
    return photo.to_dict()


def detect_text(
    event: dict[str, Any], *, rekognition: Rekognition, table: PhotoTable, settings: Settings
) -> dict[str, Any]:
    """Read bib numbers from the processed photo under the event's rules and start list.

    Returns {"bibs", "reads" (each bib with its text box, for linking), "unlisted_bibs",
    "corrections", "error": None}. Without a start list every read is a bib.
    """
    photo = Photo.from_dict(event["photo"])
    rules = events.bib_rules_for(table.event(photo.org_id, photo.event_id), settings.bib_rules)
    listed = table.start_list(photo.org_id, photo.event_id)
    with pacing.turn("DetectText", table=table, settings=settings):
        detections = rekognition.detect_text(photo.bucket, photo.processed_key)
    reads = bib_reads(detections, rules)
    unlisted: tuple[str, ...] = ()
    corrections: tuple[dict[str, str], ...] = ()
    if listed is not None:
        checked = check_reads([read.bib for read in reads], listed)
        corrected = {c["read"]: c["bib"] for c in checked.corrections}
        kept = set(checked.bibs)
        reads = [
            BibRead(corrected.get(read.bib, read.bib), read.box)
            for read in reads
            if corrected.get(read.bib, read.bib) in kept
        ]
        unlisted, corrections = checked.unlisted, checked.corrections
    bibs = list(dict.fromkeys(read.bib for read in reads))
    log.info(
        "detected photo=%s detections=%d bibs=%d unlisted=%d corrected=%d",
        photo.photo_id,
        len(detections),
        len(bibs),
        len(unlisted),
        len(corrections),
    )
    return {
        "bibs": bibs,
        "reads": [_read_dict(read) for read in reads],
        "unlisted_bibs": list(unlisted),
        "corrections": list(corrections),
        "error": None,
    }


def index_faces(
    event: dict[str, Any], *, rekognition: Rekognition, table: PhotoTable, settings: Settings
) -> dict[str, Any]:
    """Index the processed photo's faces in its event's collection; return their ids.

    A bib-only event, or one whose collection its retention period removed, indexes nothing
    (and calls Rekognition not at all).
    """
    photo = Photo.from_dict(event["photo"])
    record = table.event(photo.org_id, photo.event_id)
    if not events.faces_enabled(record) or (record or {}).get("faces_deleted_at"):
        log.info("skipped faces photo=%s: the event indexes no faces", photo.photo_id)
        return {"face_ids": [], "face_count": 0, "error": None}
    with pacing.turn("IndexFaces", table=table, settings=settings):
        faces = rekognition.index_faces(
            photo.org_id,
            photo.event_id,
            photo.bucket,
            photo.processed_key,
            external_image_id=photo.photo_id,
            max_faces=settings.index_max_faces,
            quality_filter=settings.index_quality_filter,
        )
    face_ids = [face.face_id for face in faces]
    # Noted at once: if this run is retried or superseded, Fanout deletes the faces it left.
    table.note_faces(photo.org_id, photo.event_id, photo.photo_id, face_ids)
    log.info("indexed photo=%s faces=%d", photo.photo_id, len(face_ids))
    return {
        "face_ids": face_ids,
        "faces": [face.to_dict() for face in faces],
        "face_count": len(face_ids),
        "error": None,
    }


def fanout(event: dict[str, Any], *, table: PhotoTable, rekognition: Rekognition) -> dict[str, Any]:
    """Save the photo with its bibs and faces; return what was written.

    Re-running writes the same records, drops bibs the photo no longer has, and clears any failure
    record an earlier failed run of the same upload or photo left. The photo's face ids are the
    truth: faces an earlier or retried run indexed and this one replaced are deleted from the
    collection (a run whose IndexFaces fell back keeps the faces the photo had).
    """
    photo = Photo.from_dict(event["photo"])
    found = event.get("analysis") or {}
    text, faces = found.get("text") or {}, found.get("faces") or {}
    previous = table.photo(photo.org_id, photo.event_id, photo.photo_id)
    face_ids = tuple(faces.get("face_ids") or ())
    faces_error = _error_name(faces.get("error"))
    if faces_error and previous and previous.get("face_ids"):
        face_ids = tuple(previous["face_ids"])
    # Linked only on this run's own reads and faces: a fallen-back step has no boxes to link.
    reads = [_read_from_dict(read) for read in text.get("reads") or ()]
    located = [IndexedFace.from_dict(face) for face in faces.get("faces") or ()]
    links = link_faces(reads, located)
    if faces_error and previous:
        # The faces kept from the earlier run keep their links to the bibs still read.
        links = {
            bib: face
            for bib, face in (previous.get("links") or {}).items()
            if bib in set(text.get("bibs") or ())
        }
    analysis = Analysis(
        bibs=tuple(text.get("bibs") or ()),
        face_ids=face_ids,
        bibs_error=_error_name(text.get("error")),
        faces_error=faces_error,
        links=links,
        unlisted_bibs=tuple(text.get("unlisted_bibs") or ()),
        corrections=tuple(text.get("corrections") or ()),
    )
    cleared = {photo.photo_id, _failure_photo_id(RawObject.from_dict(event))}
    if event.get("supersedes"):
        cleared.add(str(event["supersedes"]))  # a reprocessed failure recorded under another id
    requests = table.save_photo(photo, analysis, clear_failures=cleared, generation=_generation(event))
    leftover = table.noted_faces(photo.org_id, photo.event_id, photo.photo_id)
    leftover |= set((previous or {}).get("face_ids") or ())
    stale = sorted(leftover - set(face_ids))
    if stale:
        rekognition.delete_faces(photo.org_id, photo.event_id, stale)
        log.info("deleted superseded faces photo=%s faces=%d", photo.photo_id, len(stale))
    table.forget_noted_faces(photo.org_id, photo.event_id, photo.photo_id)
    uploads.mark(table, photo.raw_key, uploads.PROCESSED, photo_id=photo.photo_id)
    log.info(
        "fanout photo=%s bibs=%d links=%d requests=%d",
        photo.photo_id,
        len(analysis.bibs),
        len(analysis.links),
        requests,
    )
    return {"photo_id": photo.photo_id, "bibs": list(analysis.bibs), "requests": requests}


def record_failure(
    event: dict[str, Any],
    *,
    table: PhotoTable,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Record a FAILED item for an upload whose processing failed; return its id and reason."""
    source = RawObject.from_dict(event)
    raw = keys.parse_raw_key(source.key)
    photo = event.get("photo") or {}
    photo_id = photo.get("photo_id") or _failure_photo_id(source)
    caught = event.get("error") or {}
    failure = Failure(
        error=str(caught.get("Error") or "UnknownError"),
        cause=_readable_cause(caught.get("Cause"))[:_MAX_CAUSE],
        failed_at=iso_utc(now()),
        extra={
            "bucket": source.bucket,
            "uploaded_at": source.uploaded_at,
            "raw_size": source.size,
            "raw_version": source.version,
        },
    )
    table.record_failure(
        raw.org_id, raw.event_id, photo_id, source.key, failure, generation=_generation(event)
    )
    uploads.mark(
        table,
        source.key,
        uploads.FAILED,
        photo_id=photo_id,
        error={"code": failure.error, "message": failure.cause},
    )
    log.warning("failed photo=%s key=%s error=%s", photo_id, source.key, failure.error)
    return {"photo_id": photo_id, "status": "FAILED", "error": failure.error, "cause": failure.cause}


def _duplicate(table: PhotoTable, raw_key: str, owner: dict[str, Any]) -> dict[str, Any]:
    log.info("duplicate key=%s of photo=%s (raw key %s)", raw_key, owner["photo_id"], owner["raw_key"])
    raw = keys.parse_raw_key(raw_key)
    # Remembered on the claim, so deleting the photo deletes this copy of its bytes too.
    table.note_duplicate(raw.org_id, raw.event_id, owner["sha256"], raw_key)
    uploads.mark(table, raw_key, uploads.PROCESSED, duplicate_of=owner["photo_id"])
    return {"duplicate_of": owner["photo_id"]}


def _read_dict(read: BibRead) -> dict[str, Any]:
    box = read.box
    return {"bib": read.bib, "box": None if box is None else [box.left, box.top, box.width, box.height]}


def _read_from_dict(data: dict[str, Any]) -> BibRead:
    box = data.get("box")
    return BibRead(str(data["bib"]), None if not box else TextBox(*(float(v) for v in box)))


def _generation(event: dict[str, Any]) -> int:
    return int(event.get("generation") or 0)


def _photographer(metadata: dict[str, str], key: str) -> str | None:
    given = metadata.get("instagram-handle") or metadata.get("photographer")
    handle = keys.normalise_handle(given)
    if handle is not None and not keys.is_valid_handle(handle):
        # Kept out of the photographer index (it would break the key), but said, not dropped quietly.
        log.warning("ignored photographer handle=%r key=%s: not a usable handle", given, key)
        return None
    return handle


def _failure_photo_id(source: RawObject) -> str:
    # Before Preprocess succeeds there is no capture time or content hash: derive the id from the
    # upload itself so every retry of the same upload records the same FAILED item.
    return ids.photo_id(
        parse_iso(source.uploaded_at), ids.object_digest(source.bucket, source.key, source.version)
    )


def _error_name(caught: Any) -> str | None:
    if not caught:
        return None
    if isinstance(caught, dict):
        return str(caught.get("Error") or "UnknownError")
    return str(caught)


def _readable_cause(cause: Any) -> str:
    # Lambda errors arrive as a JSON string {"errorMessage", "errorType", "stackTrace"}.
    if not cause:
        return ""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(parsed, dict) and parsed.get("errorMessage"):
            return str(parsed["errorMessage"])
    return str(cause)
