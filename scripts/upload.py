"""Upload a folder of photos to an event, then follow each until it is processed or failed.

    python -m scripts.upload DIR --org ORG --event EVENT --token TOKEN [--photographer HANDLE] [--api URL]

Each file is uploaded straight to S3 with a presigned POST the API signs (no AWS credentials
needed). Re-running is safe: a file whose bytes the event already has is not uploaded again.
Then every upload is polled until it is PROCESSED or FAILED; failures are listed with their
reasons. Exit code 0 only when every file is accounted for (processed or failed with a reason).
The token can also come from SNAPRACE_TOKEN. Progress is a bar on a terminal, and a line every
few seconds otherwise (CI, logs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import urllib3

from chalicelib.domain import keys

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".gif": "image/gif",
}
BATCH = 100  # files per upload request, the API's limit
FINAL = ("PROCESSED", "FAILED")


class ApiError(Exception):
    """The API answered with an error: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class File:
    path: Path
    name: str  # relative to the folder
    size: int
    sha256: str
    upload_id: str = ""
    status: str = "LOCAL"  # LOCAL -> UPLOADED / ALREADY -> PROCESSING -> PROCESSED / FAILED; or NOT_SENT
    photo_id: str | None = None
    reason: str = ""
    known: bool = False  # the event already had these bytes: not sent again


@dataclass
class Report:
    files: list[File] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why) never sent
    seconds: float = 0.0

    def count(self, *statuses: str) -> int:
        return sum(1 for f in self.files if f.status in statuses)

    @property
    def accounted(self) -> bool:
        return all(f.status in FINAL for f in self.files)


class Api:
    """The SnapRace organiser API, with one bearer token."""

    def __init__(self, base: str, token: str, org: str, event: str) -> None:
        self._base = base.rstrip("/") + f"/orgs/{org}/events/{event}"
        self._token = token

    def request_uploads(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self._call("POST", "/uploads", {"files": files})["uploads"])

    def status(self, upload_id: str) -> dict[str, Any]:
        return self._call("GET", f"/uploads/{upload_id}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        request = urllib.request.Request(self._base + path, data=data, method=method, headers=headers)
        for attempt in range(5):
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return dict(json.load(response))
            except urllib.error.HTTPError as exc:
                if exc.code in (429, 503) and attempt < 4:
                    time.sleep(float(exc.headers.get("Retry-After") or 1) * (attempt + 1))
                    continue
                try:
                    error = json.load(exc)["error"]
                except (ValueError, KeyError, TypeError):
                    error = {"code": "HTTPError", "message": exc.reason}
                raise ApiError(exc.code, str(error["code"]), str(error["message"])) from exc
        raise AssertionError("unreachable")


class Progress:
    """A redrawn bar on a terminal; a plain line every `every` seconds otherwise."""

    def __init__(self, out: TextIO, total: int, label: str, every: float = 5.0) -> None:
        self._out, self._total, self._label, self._every = out, total, label, every
        self._tty = out.isatty()
        self._last = 0.0

    def show(self, done: int, detail: str = "", *, final: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            width = 30
            filled = int(width * done / self._total) if self._total else width
            self._out.write(
                f"\r{self._label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self._total} {detail}"
            )
            if final:
                self._out.write("\n")
        elif final or now - self._last >= self._every:
            self._out.write(f"{self._label}: {done}/{self._total} {detail}\n")
            self._last = now
        self._out.flush()


def photo_files(directory: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Return the image files under `directory` (sorted) and the others with why they are skipped."""
    chosen, skipped = [], []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        if path.suffix.lower() in CONTENT_TYPES:
            chosen.append(path)
        else:
            skipped.append(
                (str(path.relative_to(directory)), f"not a photo type ({', '.join(CONTENT_TYPES)})")
            )
    return chosen, skipped


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(
    directory: Path,
    api: Api,
    *,
    photographer: str | None,
    workers: int,
    timeout: float,
    poll: float,
    out: TextIO,
) -> Report:
    """Upload, then follow; return the report (every file's final status and reason)."""
    started = time.monotonic()
    paths, skipped = photo_files(directory)
    report = Report(skipped=skipped)
    report.files = [
        File(p, p.relative_to(directory).as_posix(), p.stat().st_size, sha256_of(p)) for p in paths
    ]
    http = urllib3.PoolManager(maxsize=workers)
    to_send: list[tuple[File, dict[str, Any]]] = []
    for start in range(0, len(report.files), BATCH):
        batch = report.files[start : start + BATCH]
        answers = api.request_uploads([_request(f, photographer) for f in batch])
        for file, answer in zip(batch, answers, strict=True):
            file.upload_id = answer["upload_id"]
            if "url" in answer:
                to_send.append((file, answer))
            elif answer.get("status") == "FAILED":  # sent before, and failed: reprocess retries it
                error = answer.get("error") or {}
                file.status, file.known = "FAILED", True
                file.reason = f"{error.get('code', 'Failed')}: {error.get('message', '')}".strip()
            else:  # these bytes are already in the event
                file.status, file.photo_id, file.known = "ALREADY", answer.get("photo_id"), True
    sent = Progress(out, len(to_send), "upload")
    done = 0

    def send(item: tuple[File, dict[str, Any]]) -> None:
        file, grant = item
        fields: dict[str, Any] = dict(grant["fields"])
        fields["file"] = (
            file.path.name,
            file.path.read_bytes(),
            fields.get("Content-Type", "application/octet-stream"),
        )
        response = http.request("POST", grant["url"], fields=fields, timeout=300.0)
        if response.status in (200, 201, 204):
            file.status = "UPLOADED"
        else:
            file.status, file.reason = (
                "NOT_SENT",
                f"S3 refused the upload ({response.status}): {_s3_error(response.data)}",
            )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(send, to_send):
            done += 1
            sent.show(done, f"{sum(f.size for f, _ in to_send[:done]) / 1e6:.1f} MB")
    if to_send:
        sent.show(done, "sent", final=True)
    _follow(report, api, workers=workers, timeout=timeout, poll=poll, out=out)
    report.seconds = time.monotonic() - started
    return report


def _follow(report: Report, api: Api, *, workers: int, timeout: float, poll: float, out: TextIO) -> None:
    pending = [f for f in report.files if f.status in ("UPLOADED", "ALREADY")]
    progress = Progress(out, len(pending), "process")
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            open_ = [f for f in pending if f.status not in FINAL]

            def check(file: File) -> None:
                answer = api.status(file.upload_id)
                if answer["status"] in FINAL:
                    file.status, file.photo_id = answer["status"], answer.get("photo_id")
                    if answer["status"] == "FAILED":
                        error = answer.get("error") or {}
                        file.reason = f"{error.get('code', 'Failed')}: {error.get('message', '')}".strip()

            list(pool.map(check, open_))
            finished = sum(1 for f in pending if f.status in FINAL)
            failed = sum(1 for f in pending if f.status == "FAILED")
            progress.show(finished, f"failed {failed}", final=finished == len(pending))
            if finished == len(pending) or time.monotonic() > deadline:
                if finished != len(pending):
                    progress.show(finished, f"failed {failed}; stopped waiting", final=True)
                return
            time.sleep(poll)


def _request(file: File, photographer: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "filename": file.name,
        "content_type": CONTENT_TYPES[file.path.suffix.lower()],
        "size": file.size,
        "sha256": file.sha256,
    }
    if photographer:
        request["photographer"] = photographer
    return request


def _s3_error(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    code = text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else ""
    message = text.split("<Message>")[1].split("</Message>")[0] if "<Message>" in text else text[:200]
    return f"{code} {message}".strip()


def print_summary(report: Report, out: TextIO) -> None:
    processed, failed = report.count("PROCESSED"), report.count("FAILED")
    known = sum(1 for f in report.files if f.known)
    print(
        f"{len(report.files)} photos: {processed} processed, {failed} failed ({known} sent before, not sent again), "
        f"{len(report.files) - processed - failed} not accounted for; {len(report.skipped)} other files skipped; "
        f"{report.seconds:.1f} s",
        file=out,
    )
    for file in report.files:
        if file.status == "FAILED":
            print(f"  FAILED {file.name}: {file.reason}", file=out)
        elif file.status not in FINAL:
            print(f"  NOT ACCOUNTED FOR {file.name}: {file.reason or file.status}", file=out)
    for name, why in report.skipped:
        print(f"  SKIPPED {name}: {why}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.upload", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--org", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument(
        "--token", default=os.environ.get("SNAPRACE_TOKEN"), help="organiser token (or SNAPRACE_TOKEN)"
    )
    parser.add_argument("--photographer", help="handle credited on every photo (@ optional)")
    parser.add_argument(
        "--api", default="http://127.0.0.1:8000", help="the API's base URL (default: the sandbox)"
    )
    parser.add_argument("--workers", type=int, default=4, help="parallel uploads (default 4)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for processing")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between status checks")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error(
            "an organiser token is needed: --token or SNAPRACE_TOKEN (python -m scripts.tokens create)"
        )
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a folder", file=sys.stderr)
        return 2
    for label, value in (("organisation", args.org), ("event", args.event)):
        if not keys.is_valid_id(value):
            print(f"error: {value!r} is not a valid {label} id", file=sys.stderr)
            return 2
    api = Api(args.api, args.token, args.org, args.event)
    try:
        report = run(
            args.directory,
            api,
            photographer=args.photographer,
            workers=args.workers,
            timeout=args.timeout,
            poll=args.poll,
            out=sys.stderr,
        )
    except ApiError as exc:
        print(f"error: the API refused: {exc}", file=sys.stderr)
        return 2
    except urllib.error.URLError as exc:
        print(f"error: cannot reach the API at {args.api}: {exc.reason}", file=sys.stderr)
        return 2
    print_summary(report, sys.stdout)
    return 0 if report.accounted else 1


if __name__ == "__main__":
    sys.exit(main())
