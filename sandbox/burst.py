"""`python -m sandbox burst`: an event-day burst of uploads against a Rekognition quota.

A private sandbox (free ports, the synthetic engines by default, no hold on the queue, the app's
functions in a worker process of their own) gets N generated photos uploaded at once straight to
the raw prefix, so the real path runs: S3 → SQS → the trigger → statemachine.json → Fanout. When
every upload has a PHOTO or FAILED record (or the timeout passes) it reports one line:

    photos=N processed= failed= lost= bibs_fallbacks= faces_fallbacks= throttled_calls=
    rekognition_calls_per_photo= photos_per_s= quota_bound_photos_per_s= efficiency=
    bibs_correct= faces_correct=

- lost: uploaded, never accounted for by the timeout;
- bibs_fallbacks / faces_fallbacks: processed photos whose PHOTO record carries bibs_error /
  faces_error (the state machine fell back to no bibs / no faces);
- throttled_calls, rekognition_calls_per_photo: from the local Rekognition's counters, over the
  pipeline's operations only (DetectText, IndexFaces, CreateCollection); calls are every request
  that reached the service, answered or throttled;
- photos_per_s: photos accounted for / seconds from the first upload until the last was accounted
  for (the event's photo count is read every second, the whole event listed every 15 s and as
  soon as the count reaches N less the failures seen: a listing's cost in moto grows with N);
- quota_bound_photos_per_s: the most the quota allows, the smallest TPS of the operations every
  photo needs once (DetectText, IndexFaces); `unlimited` without a quota, and efficiency (the
  ratio of the two) is then `n/a`;
- bibs_correct: photos whose stored bibs are exactly the bib drawn in them; faces_correct: photos
  with exactly the one face drawn in them indexed.

The photos come from sandbox.engines.synthetic.synthetic_photo (1600x1067 JPEG, about 390 KB,
generated before the first upload so generating is not timed): photo i carries bib 1000+i and
person i mod 50.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import boto3

from sandbox.engines.synthetic import synthetic_photo
from sandbox.quota import RateQuota
from sandbox.runtime import ENGINES, Ports, Sandbox
from sandbox.uploads import wait_for

log = logging.getLogger(__name__)

ORG, EVENT = "burst", "event-day"
PEOPLE = 50
PER_PHOTO_OPERATIONS = ("DetectText", "IndexFaces")  # each photo needs one call of each
COUNTED_OPERATIONS = (*PER_PHOTO_OPERATIONS, "CreateCollection")
# Concurrent uploads. The uploads are the load, not the system under test, but here they share
# the sandbox's process: 16 at once starved the pipeline's own requests while 500 photos went up
# (the first trigger took 6 s; the first run's slot came that much later). 4 keep the queue far
# ahead of the quota's pace (500 photos in about 29 s against 350 s of processing at T=1.5).
UPLOAD_THREADS = 4
POLL_INTERVAL = 1.0
LIST_EVERY = 15.0  # seconds between full listings of the event (the count is read every poll)
# The app's functions run in worker processes: one process (one GIL) for moto, Step Functions,
# the local Rekognition and every function topped out near 1.3 photos a second on this machine.
LAMBDA_PROCESSES = 1


@dataclass(frozen=True)
class BurstResult:
    photos: int
    processed: int
    failed: int
    lost: int
    bibs_fallbacks: int
    faces_fallbacks: int
    bibs_correct: int
    faces_correct: int
    throttled_calls: int
    rekognition_calls: int
    seconds: float  # first upload → last photo accounted for
    quota_bound_photos_per_s: float | None  # None: no quota on the per-photo operations

    @property
    def photos_per_s(self) -> float:
        accounted = self.processed + self.failed
        return accounted / self.seconds if self.seconds > 0 else 0.0

    @property
    def efficiency(self) -> float | None:
        bound = self.quota_bound_photos_per_s
        return None if bound is None else self.photos_per_s / bound

    def summary_line(self) -> str:
        """The one-line report (fields `name=value`, separated by single spaces)."""
        bound, efficiency = self.quota_bound_photos_per_s, self.efficiency
        fields = {
            "photos": self.photos,
            "processed": self.processed,
            "failed": self.failed,
            "lost": self.lost,
            "bibs_fallbacks": self.bibs_fallbacks,
            "faces_fallbacks": self.faces_fallbacks,
            "throttled_calls": self.throttled_calls,
            "rekognition_calls_per_photo": f"{self.rekognition_calls / self.photos:.2f}"
            if self.photos
            else "0",
            "photos_per_s": f"{self.photos_per_s:.2f}",
            "quota_bound_photos_per_s": "unlimited" if bound is None else f"{bound:.2f}",
            "efficiency": "n/a" if efficiency is None else f"{efficiency:.3f}",
            "bibs_correct": self.bibs_correct,
            "faces_correct": self.faces_correct,
        }
        return " ".join(f"{name}={value}" for name, value in fields.items())


def burst_photo(index: int) -> tuple[str, int]:
    """The (bib, person) photo `index` of a burst carries: every bib differs, people repeat."""
    return str(1000 + index), index % PEOPLE


def quota_bound(quota: RateQuota | None) -> float | None:
    """Photos per second the quota allows: the smallest rate among the per-photo operations."""
    rates = [quota.rate(name) for name in PER_PHOTO_OPERATIONS] if quota is not None else []
    limited = [rate for rate in rates if rate is not None]
    return min(limited) if limited else None


def run_burst(
    photos: int,
    *,
    quota: RateQuota | None = None,
    engine: str = "synthetic",
    timeout: float = 600.0,
    retry_sleep_scale: float = 1.0,
    pace: bool = True,
    lambda_processes: int = LAMBDA_PROCESSES,
    out: TextIO | None = None,
) -> BurstResult:
    """Start a private sandbox, upload `photos` generated photos at once, wait; return the result."""
    if photos < 1:
        raise ValueError(f"a burst needs at least one photo, not {photos}")
    expected = {f"{ORG}/{EVENT}/raw/burst-{index:05d}.jpg": burst_photo(index) for index in range(photos)}
    bodies = {key: synthetic_photo(*carried) for key, carried in expected.items()}
    sandbox = Sandbox(
        ports=Ports.free(),
        engines=ENGINES[engine],
        quota=quota,
        max_running_executions=None,
        retry_sleep_scale=retry_sleep_scale,
        pace=pace,
        lambda_processes=lambda_processes,
    )
    with sandbox:
        res, service = sandbox.resources, sandbox.rekognition
        if res is None or service is None:
            raise RuntimeError("the sandbox started without its resources or its Rekognition")
        started = time.monotonic()
        _upload_all(bodies, res.bucket)
        log.info("burst uploaded photos=%d seconds=%.2f", photos, time.monotonic() - started)
        outcome = wait_for(
            list(bodies),
            table_name=res.table_name,
            org=ORG,
            event=EVENT,
            timeout=timeout,
            out=out,
            started=started,
            poll_interval=POLL_INTERVAL,
            list_every=LIST_EVERY,
        )
        counts = service.call_counts()
    processed = outcome.processed.values()
    counted = [counts[name] for name in COUNTED_OPERATIONS if name in counts]
    return BurstResult(
        photos=photos,
        processed=len(outcome.processed),
        failed=len(outcome.failed),
        lost=len(outcome.missing),
        bibs_fallbacks=sum(1 for item in processed if item.get("bibs_error")),
        faces_fallbacks=sum(1 for item in processed if item.get("faces_error")),
        bibs_correct=sum(
            1 for key, item in outcome.processed.items() if item.get("bibs") == [expected[key][0]]
        ),
        faces_correct=sum(1 for item in processed if _face_count(item) == 1),
        throttled_calls=sum(count.throttled for count in counted),
        rekognition_calls=sum(count.calls for count in counted),
        seconds=outcome.settled_seconds,
        quota_bound_photos_per_s=quota_bound(quota),
    )


def parse_summary_line(line: str) -> dict[str, str]:
    """The fields of a summary line, by name."""
    return dict(field.split("=", 1) for field in line.split())


def _upload_all(bodies: dict[str, bytes], bucket: str) -> None:
    s3 = boto3.client("s3")  # one client: thread-safe, and building one per thread costs more

    def put(item: tuple[str, bytes]) -> None:
        key, body = item
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/jpeg")

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="burst-upload") as pool:
        for _ in pool.map(put, bodies.items()):
            pass


def _face_count(item: dict[str, Any]) -> int:
    count = item.get("face_count")
    if count is None:
        return len(item.get("face_ids") or [])
    return int(count)
