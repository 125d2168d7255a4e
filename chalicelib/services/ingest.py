"""The upload trigger: S3 event notification (via SQS) -> one pipeline run per raw photo, started at
once with a start slot at Rekognition's pace that the run waits for (services/pacing.py)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import PhotoTable
from chalicelib.adapters.workflow import Workflow
from chalicelib.config import Settings
from chalicelib.domain import ids, keys
from chalicelib.domain.errors import InvalidKey, NotAnS3Notification
from chalicelib.domain.model import RawObject, iso_utc, parse_iso
from chalicelib.services import pacing, uploads

log = logging.getLogger(__name__)

RAW_TAG = ("folder", "raw")


@dataclass(frozen=True)
class Upload:
    """One object-created record of an S3 event notification."""

    bucket: str
    key: str  # decoded
    version_id: str | None
    etag: str | None
    size: int
    event_time: str
    event_name: str


@dataclass
class IngestResult:
    started: list[str] = field(default_factory=list)
    already_started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def parse_notification(body: str) -> list[Upload]:
    """Return the object-created records of an S3 notification body ([] for s3:TestEvent).

    Raises NotAnS3Notification if the body is anything else.
    """
    try:
        message = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise NotAnS3Notification(f"body is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise NotAnS3Notification("body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list) or not records:
        raise NotAnS3Notification("body has no Records list")
    uploads = []
    for record in records:
        try:
            if record.get("eventSource") != "aws:s3":
                raise NotAnS3Notification(f"record from {record.get('eventSource')!r}, not aws:s3")
            s3 = record["s3"]
            obj = s3["object"]
            event_time = record.get("eventTime") or ""
            parse_iso(event_time)  # validates
            uploads.append(
                Upload(
                    bucket=s3["bucket"]["name"],
                    key=keys.decode_event_key(obj["key"]),
                    version_id=obj.get("versionId") or None,
                    etag=(obj.get("eTag") or obj.get("sequencer") or None),
                    size=int(obj.get("size") or 0),
                    event_time=iso_utc(parse_iso(event_time)),
                    event_name=str(record.get("eventName", "")),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NotAnS3Notification(f"malformed S3 record: {exc!r}") from exc
    return uploads


def ingest_message(
    body: str,
    *,
    storage: Storage,
    workflow: Workflow,
    table: PhotoTable,
    settings: Settings,
    now: float,
) -> IngestResult:
    """Start one pipeline run per new raw photo of an S3 notification, each with its start slot.

    Raises NotAnS3Notification for a body retrying cannot fix; transient AWS errors propagate so
    SQS redelivers (already-started executions are recognised by their derived names).
    """
    result = IngestResult()
    for upload in parse_notification(body):
        if not upload.event_name.startswith("ObjectCreated") or not _is_raw_upload(upload.key):
            result.skipped.append(upload.key)
            continue
        _tag_raw(storage, upload)
        source = RawObject(
            bucket=upload.bucket,
            key=upload.key,
            version_id=upload.version_id,
            etag=upload.etag,
            size=upload.size,
            uploaded_at=upload.event_time,
        )
        run = pacing.Run(ids.execution_name(upload.bucket, upload.key, source.version), source.to_dict())
        outcome = pacing.admit(run, table=table, workflow=workflow, settings=settings, now=now)
        log.info("execution=%s %s key=%s", run.name, outcome, upload.key)
        if outcome == pacing.ALREADY_STARTED:
            result.already_started.append(run.name)
            continue
        result.started.append(run.name)
        uploads.mark(table, upload.key, uploads.PROCESSING, execution=run.name)
    return result


def _is_raw_upload(key: str) -> bool:
    try:
        keys.parse_raw_key(key)
    except InvalidKey as exc:
        parts = key.split("/")
        if len(parts) >= 4 and parts[2] == keys.RAW_FOLDER:
            # In the raw folder but unusable (e.g. an org id with '#'): nobody can find this photo,
            # so say so loudly rather than skip it quietly.
            log.error("rejected upload key=%s: %s", key, exc)
        else:
            log.info("skip key=%s: not a raw upload", key)
        return False
    return True


def _tag_raw(storage: Storage, upload: Upload) -> None:
    # Best effort: lifecycle rules key on the tag, but a missing tag must not block processing.
    try:
        storage.ensure_tag(upload.bucket, upload.key, *RAW_TAG, version=upload.version_id)
    except Exception as exc:  # noqa: BLE001 - logged, never fatal
        log.warning("could not tag key=%s folder=raw: %s", upload.key, exc)


def describe(result: IngestResult) -> dict[str, Any]:
    """Return a JSON-friendly summary of an ingest result."""
    return {
        "started": len(result.started),
        "already_started": len(result.already_started),
        "skipped": len(result.skipped),
    }
