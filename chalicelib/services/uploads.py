"""Photographers' uploads: presigned S3 POSTs, and each upload's status as the pipeline moves it.

An upload's record is written when its POST is signed (PENDING); the trigger marks it PROCESSING,
Fanout PROCESSED with its photo id, RecordFailure FAILED with the reason. A file whose bytes the
event already has (same SHA-256, sent by the client as `sha256`) gets no URL: its answer says where
those bytes stand (the photo that has them, or the failure and its reason), so re-running an
upload command uploads nothing twice. Without `sha256`, the
pipeline still folds equal bytes into one photo when it reads them (see pipeline.preprocess).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from ulid import ULID

from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import PhotoTable
from chalicelib.config import Settings
from chalicelib.domain import keys
from chalicelib.domain.errors import EventDeleted, InvalidUploadRequest, UploadNotFound
from chalicelib.domain.model import iso_utc

PENDING, PROCESSING, PROCESSED, FAILED = "PENDING", "PROCESSING", "PROCESSED", "FAILED"
MAX_FILES = 100
# What the bucket notifies for and Preprocess decodes, by the type a client declares.
CONTENT_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/tiff": ".tiff",
    "image/gif": ".gif",
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_FIELDS = {"filename", "content_type", "size", "photographer", "sha256"}


def request_uploads(
    org_id: str,
    event_id: str,
    body: Any,
    *,
    bucket: str,
    table: PhotoTable,
    storage: Storage,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """Return one presigned POST per file (or, for bytes the event has, the photo that has them).

    Raises InvalidUploadRequest naming the first bad file, or EventDeleted.
    """
    event = table.event(org_id, event_id)
    if event is not None and event.get("status", "ACTIVE") != "ACTIVE":
        raise EventDeleted(f"event {org_id}/{event_id} is being deleted; it takes no uploads")
    files = _files(body, settings)
    expires = now + timedelta(seconds=settings.upload_url_seconds)
    answers = []
    for file in files:
        known = table.content_owner(org_id, event_id, file["sha256"]) if file.get("sha256") else None
        upload_id = _upload_id(org_id, event_id, file.get("sha256"))
        if known is not None:
            answers.append(
                {
                    "upload_id": upload_id,
                    "status": PROCESSED,
                    "photo_id": known["photo_id"],
                    "duplicate": True,
                }
            )
            continue
        existing = table.upload(org_id, event_id, upload_id) if file.get("sha256") else None
        if existing is not None and existing["status"] != PENDING:
            # These bytes were sent before. Sent again they would be the same object (same key, same
            # ETag): no new run would start. Say where they stand; a failed one is retried by reprocess.
            answer = {"upload_id": upload_id, "status": existing["status"], "duplicate": True}
            if existing.get("photo_id"):
                answer["photo_id"] = existing["photo_id"]
            if existing["status"] == FAILED and existing.get("error"):
                answer["error"] = existing["error"]
            answers.append(answer)
            continue
        extension = CONTENT_TYPES[file["content_type"]]
        key = keys.upload_key(org_id, event_id, upload_id, keys.safe_filename(file["filename"], extension))
        metadata = {"photographer": file["photographer"]} if file.get("photographer") else {}
        post = storage.presigned_post(
            bucket,
            key,
            content_type=file["content_type"],
            max_bytes=settings.max_upload_bytes,
            metadata=metadata,
            expires_in=settings.upload_url_seconds,
        )
        table.put_upload(
            org_id,
            event_id,
            {
                "upload_id": upload_id,
                "key": key,
                "filename": file["filename"],
                "content_type": file["content_type"],
                "size": file["size"],
                "photographer": file.get("photographer"),
                "sha256": file.get("sha256"),
                "status": PENDING,
                "created_at": iso_utc(now),
                "expires_at": iso_utc(expires),
            },
        )
        answers.append(
            {
                "upload_id": upload_id,
                "key": key,
                "url": post["url"],
                "fields": post["fields"],
                "expires_at": iso_utc(expires),
            }
        )
    return {"uploads": answers}


def upload_status(org_id: str, event_id: str, upload_id: str, *, table: PhotoTable) -> dict[str, Any]:
    """Return an upload's status, photo id and, when it failed, the reason; raise UploadNotFound."""
    record = table.upload(org_id, event_id, upload_id)
    if record is None:
        raise UploadNotFound(f"no upload {upload_id} in event {org_id}/{event_id}")
    status, photo_id = record["status"], record.get("photo_id")
    duplicate_of = record.get("duplicate_of")
    if duplicate_of:
        # The same bytes as another upload: this one is whatever became of that photo.
        photo_id = duplicate_of
        failure = table.failure(org_id, event_id, duplicate_of)
        status = (
            PROCESSED if table.photo(org_id, event_id, duplicate_of) else FAILED if failure else PROCESSING
        )
        if failure and status == FAILED:
            record = {**record, "error": {"code": failure["error"], "message": failure["cause"]}}
    answer: dict[str, Any] = {
        "upload_id": upload_id,
        "status": status,
        "key": record["key"],
        "filename": record["filename"],
    }
    if photo_id and status != PENDING:
        answer["photo_id"] = photo_id
    if duplicate_of:
        answer["duplicate"] = True
    if status == FAILED and record.get("error"):
        answer["error"] = record["error"]
    return answer


def mark(table: PhotoTable, raw_key: str, status: str, **values: Any) -> bool:
    """Move the upload a raw key belongs to (if it came through the API) to `status`; True if it did."""
    try:
        raw = keys.parse_raw_key(raw_key)
    except Exception:  # noqa: BLE001 - not an API upload key: nothing to mark
        return False
    if raw.upload_id is None:
        return False
    return table.update_upload(raw.org_id, raw.event_id, raw.upload_id, status=status, **values)


def _upload_id(org_id: str, event_id: str, sha256: str | None) -> str:
    if sha256 is None:
        return str(ULID())
    # The same bytes in the same event always get the same id (and so the same key).
    digest = hashlib.sha256(f"{org_id}/{event_id}/{sha256}".encode()).digest()
    return str(ULID.from_bytes(bytes(6) + digest[:10]))


def _files(body: Any, settings: Settings) -> list[dict[str, Any]]:
    files = body.get("files") if isinstance(body, dict) else None
    if isinstance(body, dict) and set(body) - {"files"}:
        raise InvalidUploadRequest(f"unknown fields: {', '.join(sorted(set(body) - {'files'}))}")
    if not isinstance(files, list) or not files:
        raise InvalidUploadRequest('send {"files": [{"filename", "content_type", "size"}, ...]}')
    if len(files) > MAX_FILES:
        raise InvalidUploadRequest(f"at most {MAX_FILES} files per request, got {len(files)}")
    checked = []
    for n, file in enumerate(files):
        where = f"files[{n}]"
        if not isinstance(file, dict) or set(file) - _FILE_FIELDS:
            raise InvalidUploadRequest(f"{where} must be an object with {', '.join(sorted(_FILE_FIELDS))}")
        name = file.get("filename")
        if not isinstance(name, str) or not name.strip() or len(name) > 1024:
            raise InvalidUploadRequest(f"{where}.filename must be a non-empty string")
        content_type = file.get("content_type")
        if not isinstance(content_type, str) or content_type not in CONTENT_TYPES:
            raise InvalidUploadRequest(
                f"{where}.content_type {content_type!r} is not accepted; use one of {', '.join(CONTENT_TYPES)}"
            )
        size = file.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= settings.max_upload_bytes:
            raise InvalidUploadRequest(
                f"{where}.size must be 1 to {settings.max_upload_bytes} bytes, got {size!r}"
            )
        photographer = file.get("photographer")
        if photographer is not None:
            handle = keys.normalise_handle(photographer) if isinstance(photographer, str) else None
            if handle is None or not keys.is_valid_handle(handle):
                raise InvalidUploadRequest(f"{where}.photographer {photographer!r} is not a handle")
            photographer = handle
        sha256 = file.get("sha256")
        if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
            raise InvalidUploadRequest(f"{where}.sha256 must be 64 lowercase hex digits")
        checked.append({**file, "photographer": photographer})
    return checked
