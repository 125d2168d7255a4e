"""Upload a folder of photos into the sandbox's raw prefix and wait until each is accounted for."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import boto3

from chalicelib.adapters.table import PhotoTable
from chalicelib.domain.model import EventSettings, iso_utc
from chalicelib.services import auth
from sandbox.resources import UPLOAD_SUFFIXES


@dataclass
class Outcome:
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw key -> PHOTO item
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw key -> FAILED item
    missing: list[str] = field(default_factory=list)  # uploaded, never accounted for
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) never uploaded
    seconds: float = 0.0
    settled_seconds: float = 0.0  # when the last record was first seen (== seconds once all are in)

    @property
    def photos_per_minute(self) -> float:
        done = len(self.processed) + len(self.failed)
        return 60.0 * done / self.seconds if self.seconds > 0 else 0.0


def publish_event(table_name: str, org: str, event: str) -> None:
    """Create the event published (named after its id) unless it exists; publish it if it does."""
    table = PhotoTable(boto3.client("dynamodb"), table_name)
    record = table.event(org, event)
    if record is None:
        settings = EventSettings(name=event, date=date.today().isoformat(), published=True)
    elif record.get("published"):
        return
    else:
        settings = replace(EventSettings.from_dict(record), published=True)
    table.put_event(org, event, settings, now=iso_utc(datetime.now(UTC)))


def organiser_token(table_name: str, org: str) -> str:
    """Create an organiser token for `org` (the sandbox's operator has the table's credentials)."""
    table = PhotoTable(boto3.client("dynamodb"), table_name)
    token, _ = auth.create_token(org, label="sandbox", table=table, now=iso_utc(datetime.now(UTC)))
    return token


def photo_files(directory: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Return the files the bucket notifies for, and the others with the reason they are skipped."""
    chosen, skipped = [], []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() in UPLOAD_SUFFIXES:
            chosen.append(path)
        else:
            skipped.append(
                (str(path), f"not uploaded: the bucket only notifies for {', '.join(UPLOAD_SUFFIXES)}")
            )
    return chosen, skipped


def upload(
    files: list[Path], directory: Path, *, bucket: str, org: str, event: str, photographer: str | None = None
) -> list[str]:
    """Upload files under `{org}/{event}/raw/` keeping their relative paths; return the raw keys."""
    s3 = boto3.client("s3")
    keys = []
    for path in files:
        key = f"{org}/{event}/raw/{path.relative_to(directory).as_posix()}"
        extra = {"Metadata": {"photographer": photographer}} if photographer else {}
        s3.upload_file(str(path), bucket, key, ExtraArgs=extra)
        keys.append(key)
    return keys


def wait_for(
    keys: list[str],
    *,
    table_name: str,
    org: str,
    event: str,
    timeout: float = 1800.0,
    out: TextIO | None = sys.stderr,
    started: float | None = None,
    poll_interval: float = 0.5,
    list_every: float = 0.0,
) -> Outcome:
    """Poll the table until every raw key has a PHOTO or FAILED item (or `timeout`); show progress.

    With `list_every` > 0 (an event of only these uploads), most polls read the event's photo count
    (one GetItem) and the whole event is listed only every `list_every` seconds, or as soon as the
    count says every upload may be accounted for: listing a big event in moto every half second
    would take a good part of the machine the pipeline it measures runs on.
    """
    started = time.monotonic() if started is None else started
    table = PhotoTable(boto3.client("dynamodb"), table_name)
    wanted = set(keys)
    outcome = Outcome()
    listed_at = -math.inf
    while True:
        seen = len(outcome.processed) + len(outcome.failed)
        now = time.monotonic()
        if list_every > 0 and now - listed_at < list_every and now - started <= timeout:
            photos = int((table.event(org, event) or {}).get("photo_count", 0))
            if photos + len(outcome.failed) < len(wanted):
                time.sleep(poll_interval)
                continue
        listed_at = now
        for item in table.event_records(org, event):
            raw_key = item.get("raw_key")
            if raw_key not in wanted:
                continue
            if item.get("status") == "FAILED":
                if raw_key not in outcome.processed:
                    outcome.failed[raw_key] = item
            else:
                outcome.processed[raw_key] = item
                outcome.failed.pop(raw_key, None)
        outcome.seconds = time.monotonic() - started
        if len(outcome.processed) + len(outcome.failed) > seen:
            outcome.settled_seconds = outcome.seconds
        if out is not None:
            _progress(out, outcome, len(wanted))
        if len(outcome.processed) + len(outcome.failed) >= len(wanted):
            break
        if outcome.seconds > timeout:
            outcome.missing = sorted(wanted - set(outcome.processed) - set(outcome.failed))
            break
        time.sleep(poll_interval)
    if out is not None:
        out.write("\n")
    return outcome


def _progress(out: TextIO, outcome: Outcome, total: int) -> None:
    done, failed = len(outcome.processed), len(outcome.failed)
    width = 30
    filled = int(width * (done + failed) / total) if total else width
    out.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done + failed}/{total}"
        f"  done {done}  failed {failed}  {outcome.photos_per_minute:.1f} photos/min"
    )
    out.flush()
