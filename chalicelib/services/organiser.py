"""What organisers do to an event's photos: follow failures, reprocess, delete; and face retention.

Jobs that can outgrow an API call (reprocess everything, delete an event) run in `run_job`, which
stops when its time is nearly up and returns what is left; app.py hands that back to the jobs
function. Every step is idempotent, so a retried job repeats nothing harmful.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.adapters.functions import Functions
from chalicelib.adapters.rekognition import Rekognition
from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import PhotoTable
from chalicelib.adapters.workflow import Workflow
from chalicelib.config import Settings
from chalicelib.domain import ids, keys
from chalicelib.domain.errors import (
    EventDeleted,
    EventNotFound,
    InvalidId,
    InvalidReprocessRequest,
    PhotoNotFound,
)
from chalicelib.domain.model import RawObject, failed_view, iso_utc
from chalicelib.services import events, listing, pacing

log = logging.getLogger(__name__)

MAX_PHOTO_IDS = 100
REPROCESS, DELETE_EVENT = "reprocess", "delete_event"
# What an API call does itself before handing the rest of a job to the jobs function.
API_BUDGET_SECONDS = 10.0


def failures(
    org_id: str,
    event_id: str,
    *,
    limit: str | None,
    cursor: str | None,
    table: PhotoTable,
    settings: Settings,
) -> dict[str, Any]:
    """Return one page of an event's failed photos with their reasons, newest first."""
    events.check_ids(org_id, event_id)
    return listing.page(
        failed_view,
        settings,
        ("failures", org_id, event_id),
        limit=limit,
        cursor=cursor,
        fetch=lambda size, after: table.failures_page(org_id, event_id, limit=size, after=after),
        items="failures",
    )


def reprocess(
    org_id: str,
    event_id: str,
    body: Any,
    *,
    table: PhotoTable,
    workflow: Workflow,
    settings: Settings,
    functions: Functions,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Start new runs of the photos a request names; return {"started", "continuing"} (and "unknown").

    `{"photo_ids": [...]}` (at most 100), `{"failed": true}` or `{"all": true}`. Each run carries
    the next generation number in its derived name, so a retried request starts nothing twice.
    Raises InvalidReprocessRequest, InvalidId or EventDeleted.
    """
    events.check_ids(org_id, event_id)
    _require_active(table, org_id, event_id)
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidReprocessRequest('send one of {"photo_ids": [...]}, {"failed": true} or {"all": true}')
    if "photo_ids" in body:
        photo_ids = body["photo_ids"]
        if not isinstance(photo_ids, list) or not 0 < len(photo_ids) <= MAX_PHOTO_IDS:
            raise InvalidReprocessRequest(f"photo_ids must list 1 to {MAX_PHOTO_IDS} photo ids")
        for photo_id in photo_ids:
            if not isinstance(photo_id, str) or not ids.is_photo_id(photo_id):
                raise InvalidId(f"{photo_id!r} is not a photo id")
        started, unknown = 0, []
        for photo_id in dict.fromkeys(photo_ids):
            record = table.photo(org_id, event_id, photo_id) or table.failure(org_id, event_id, photo_id)
            if record is None:
                unknown.append(photo_id)
            else:
                started += _start_run(record, table=table, workflow=workflow, settings=settings)
        return {"started": started, "continuing": False, "unknown": unknown}
    scope = "failed" if body.get("failed") is True else "all" if body.get("all") is True else None
    if scope is None:
        raise InvalidReprocessRequest('send one of {"photo_ids": [...]}, {"failed": true} or {"all": true}')
    job = {"job": REPROCESS, "org_id": org_id, "event_id": event_id, "scope": scope}
    return _run_then_hand_off(
        job, table=table, workflow=workflow, settings=settings, functions=functions, clock=clock
    )


def delete_photo(
    org_id: str,
    event_id: str,
    photo_id: str,
    *,
    table: PhotoTable,
    storage: Storage,
    rekognition: Rekognition,
) -> dict[str, Any]:
    """Delete every trace of a photo: objects, faces, records; the counts drop. Raise PhotoNotFound."""
    events.check_ids(org_id, event_id)
    if not ids.is_photo_id(photo_id):
        raise InvalidId(f"{photo_id!r} is not a photo id")
    failure = table.failure(org_id, event_id, photo_id)
    record = table.delete_photo(org_id, event_id, photo_id)
    if record is None and failure is None:
        raise PhotoNotFound(f"no photo {photo_id} in event {org_id}/{event_id}")
    _erase(record, failure, table=table, storage=storage, rekognition=rekognition)
    log.info("deleted photo=%s event=%s/%s", photo_id, org_id, event_id)
    return {"photo_id": photo_id, "deleted": True}


def delete_event(
    org_id: str,
    event_id: str,
    *,
    table: PhotoTable,
    workflow: Workflow,
    settings: Settings,
    functions: Functions,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Start deleting an event and everything in it; return its status (DELETING, or DELETED)."""
    events.check_ids(org_id, event_id)
    record = table.event(org_id, event_id)
    if record is None:
        raise EventNotFound(f"no event {org_id}/{event_id}")
    if record.get("status") != events.DELETED:
        table.update_event(org_id, event_id, status=events.DELETING)
    job = {"job": DELETE_EVENT, "org_id": org_id, "event_id": event_id}
    _run_then_hand_off(
        job, table=table, workflow=workflow, settings=settings, functions=functions, clock=clock
    )
    current = table.event(org_id, event_id) or {}
    return {"org_id": org_id, "event_id": event_id, "status": current.get("status", events.DELETING)}


def run_job(
    job: dict[str, Any],
    *,
    table: PhotoTable,
    workflow: Workflow,
    settings: Settings,
    storage: Storage,
    rekognition: Rekognition,
    functions: Functions,
    bucket: str,
    deadline: Callable[[], bool],
) -> bool:
    """Do `job` until done or `deadline()` says stop, then hand the rest on; return True if it did."""
    org_id, event_id = job["org_id"], job["event_id"]
    if job["job"] == REPROCESS:
        rest = _reprocess_records(job, table=table, workflow=workflow, settings=settings, deadline=deadline)
    elif job["job"] == DELETE_EVENT:
        rest = _delete_event_contents(
            org_id,
            event_id,
            table=table,
            storage=storage,
            rekognition=rekognition,
            bucket=bucket,
            deadline=deadline,
        )
    else:
        raise ValueError(f"unknown job {job.get('job')!r}")
    if rest is not None:
        functions.start_job(rest)
    return rest is not None


def expire_faces(*, table: PhotoTable, rekognition: Rekognition, today: date, now: datetime) -> list[str]:
    """Delete the face collection of every event past its retention; return "org/event" of each."""
    expired = []
    for record in table.events():
        days = record.get("retention_days")
        if days is None or record.get("faces_deleted_at") or record.get("status") == events.DELETED:
            continue
        if date.fromisoformat(record["date"]) + timedelta(days=int(days)) > today:
            continue
        org_id, event_id = record["org_id"], record["event_id"]
        rekognition.delete_collection(org_id, event_id)
        table.update_event(org_id, event_id, faces_deleted_at=iso_utc(now))
        expired.append(f"{org_id}/{event_id}")
        log.info("retention: deleted the face collection of event=%s/%s (%d days)", org_id, event_id, days)
    return expired


# --- jobs ---------------------------------------------------------------------------------------


def _run_then_hand_off(
    job: dict[str, Any],
    *,
    table: PhotoTable,
    workflow: Workflow,
    settings: Settings,
    functions: Functions,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Do as much of a job as fits this API call; hand the rest to the jobs function."""
    stop_at = clock() + API_BUDGET_SECONDS
    if job["job"] == REPROCESS:
        rest = _reprocess_records(
            job,
            table=table,
            workflow=workflow,
            settings=settings,
            deadline=lambda: clock() >= stop_at,
        )
    else:
        # Deleting touches S3 and Rekognition too: the jobs function does all of it.
        rest = job
    if rest is not None:
        functions.start_job(rest)
    return {"started": int((rest or job).get("started", 0)), "continuing": rest is not None}


def _reprocess_records(
    job: dict[str, Any],
    *,
    table: PhotoTable,
    workflow: Workflow,
    settings: Settings,
    deadline: Callable[[], bool],
) -> dict[str, Any] | None:
    org_id, event_id, scope = job["org_id"], job["event_id"], job["scope"]
    after = job.get("after")
    started = int(job.get("started", 0))
    while True:
        if scope == "failed":
            page = table.failures_page(org_id, event_id, limit=100, after=after)
        else:
            page = table.records_page(org_id, event_id, limit=100, after=after)
        for record in page.items:
            started += _start_run(record, table=table, workflow=workflow, settings=settings)
        after = page.last_key
        job["started"] = started
        if after is None:
            log.info("reprocess %s event=%s/%s started=%d", scope, org_id, event_id, started)
            return None
        if deadline():
            return {**job, "after": after, "started": started}


def _start_run(record: dict[str, Any], *, table: PhotoTable, workflow: Workflow, settings: Settings) -> int:
    """Start the next generation's run of a photo or failure record, waiting for its slot at
    Rekognition's pace; return 1 if started, 0 if that generation already ran."""
    if not all(record.get(name) for name in ("bucket", "raw_key", "uploaded_at")):
        # Only a record written before uploads were located this way could lack them.
        log.warning(
            "cannot reprocess photo=%s: its record does not say where its upload is", record.get("photo_id")
        )
        return 0
    generation = int(record.get("generation") or 0) + 1
    source = RawObject(
        bucket=record["bucket"],
        key=record["raw_key"],
        version_id=None,  # the object as it is now: a fixed re-upload replaces a broken one
        etag=record.get("raw_version"),  # so the failure id derived from the upload stays the same
        size=int(record.get("raw_size") or record.get("size") or 0),
        uploaded_at=record["uploaded_at"],
    )
    payload = {**source.to_dict(), "generation": generation}
    if record.get("status") == "FAILED":
        payload["supersedes"] = record["photo_id"]
    run = pacing.Run(ids.reprocess_execution_name(source.bucket, source.key, generation), payload)
    outcome = pacing.admit(run, table=table, workflow=workflow, settings=settings, now=time.time())
    return 0 if outcome == pacing.ALREADY_STARTED else 1


def _delete_event_contents(
    org_id: str,
    event_id: str,
    *,
    table: PhotoTable,
    storage: Storage,
    rekognition: Rekognition,
    bucket: str,
    deadline: Callable[[], bool],
) -> dict[str, Any] | None:
    for record in list(table.event_records(org_id, event_id)):
        if record.get("status") == "FAILED":
            failure, photo = record, None
            table.delete_photo(org_id, event_id, record["photo_id"])
        else:
            failure, photo = None, table.delete_photo(org_id, event_id, record["photo_id"])
        _erase(photo, failure, table=table, storage=storage, rekognition=rekognition, faces=False)
        if deadline():
            return {"job": DELETE_EVENT, "org_id": org_id, "event_id": event_id}
    # Everything under the event's prefix, including uploads that never became photos.
    storage.delete_objects(bucket, storage.list_keys(bucket, f"{org_id}/{event_id}/"))
    rekognition.delete_collection(org_id, event_id)
    table.delete_event_leftovers(org_id, event_id)
    table.update_event(org_id, event_id, status=events.DELETED)
    log.info("deleted event=%s/%s", org_id, event_id)
    return None


def _erase(
    photo: dict[str, Any] | None,
    failure: dict[str, Any] | None,
    *,
    table: PhotoTable,
    storage: Storage,
    rekognition: Rekognition,
    faces: bool = True,
) -> None:
    """Delete the objects, faces and upload records left by a photo and/or its failure."""
    org_id = (photo or failure or {})["org_id"]
    event_id = (photo or failure or {})["event_id"]
    objects: dict[str, list[str]] = {}
    raw_keys: list[str] = []
    for record in (photo, failure):
        if record is None:
            continue
        bucket = record.get("bucket")
        if bucket:
            objects.setdefault(bucket, []).append(record["raw_key"])
            raw_keys.append(record["raw_key"])
    if photo is not None:
        objects.setdefault(photo["bucket"], []).append(photo["processed_key"])
        if photo.get("grid_key"):
            objects[photo["bucket"]].append(photo["grid_key"])
        for duplicate in photo.get("duplicate_keys") or []:
            objects[photo["bucket"]].append(duplicate)
            raw_keys.append(duplicate)
        if faces and photo.get("face_ids"):
            rekognition.delete_faces(org_id, event_id, list(photo["face_ids"]))
    for bucket, object_keys in objects.items():
        storage.delete_objects(bucket, sorted(set(object_keys)))
    for raw_key in raw_keys:
        upload_id = keys.parse_raw_key(raw_key).upload_id
        if upload_id:
            table.delete_upload(org_id, event_id, upload_id)


def _require_active(table: PhotoTable, org_id: str, event_id: str) -> None:
    record = table.event(org_id, event_id)
    if record is not None and record.get("status", events.ACTIVE) != events.ACTIVE:
        raise EventDeleted(f"event {org_id}/{event_id} is being deleted")
