"""The runners' web page: HTML pages rendered from templates, and the static assets they load.

Pure string work over the files in `chalicelib/web/` (Chalice packages everything under
chalicelib/). Pages link their assets as `{root}/assets/{name}?v={hash}`: the hash is the file's
content, so a page never runs an old script against a new API, and an asset asked for with its
current hash may be cached for a year. `root` is the path the app is served under (`/api` behind
API Gateway's stage, empty under `chalice local`), derived from the request (`root_path`).
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from string import Template
from typing import Any

from chalicelib.adapters.table import PhotoTable
from chalicelib.services import events
from chalicelib.services.events import EventGate

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# Photos are presigned S3 or CDN URLs on another origin (img-src); the download button fetches
# the photo itself to save it under its file name (connect-src). Nothing else leaves the origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: https: http:; connect-src 'self' https: http:; "
    "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_CACHE = "public, max-age=60"
ERROR_CACHE = "no-store"
ASSET_CACHE = "public, max-age=300"  # asked for without (or with an old) content hash
VERSIONED_ASSET_CACHE = "public, max-age=31536000, immutable"

_CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
}
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_SAFE_ROOT = re.compile(r"(/[A-Za-z0-9._~-]+)*")


@dataclass(frozen=True)
class Asset:
    """A static file the pages load, with its content type and content hash."""

    name: str
    body: str
    content_type: str
    version: str  # the first 16 hex digits of the content's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def cache_control(self, asked_version: str | None) -> str:
        """Cache for a year when asked for by its current hash, else briefly."""
        return VERSIONED_ASSET_CACHE if asked_version == self.version else ASSET_CACHE


@functools.cache
def assets() -> dict[str, Asset]:
    """Return the static assets by file name (read once per container)."""
    found = {}
    for path in sorted(WEB_DIR.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_text(encoding="utf-8")
        version = hashlib.sha256(body.encode()).hexdigest()[:16]
        found[path.name] = Asset(path.name, body, content_type, version)
    return found


def asset(name: str) -> Asset | None:
    """Return the asset called `name`, or None if there is none."""
    return assets().get(name)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer for app.py to send as it is."""

    status: int
    headers: dict[str, str]
    body: str


def asset_answer(name: str, *, version: str | None, if_none_match: str | None) -> Answer:
    """Return the answer to GET /assets/{name}: the file, 304 if the client has it, or 404."""
    found = asset(name)
    if found is None:
        return Answer(404, {"Content-Type": "text/plain; charset=utf-8", **_NOSNIFF}, "no such asset")
    headers = {"Cache-Control": found.cache_control(version), "ETag": found.etag, **_NOSNIFF}
    if if_none_match and _matches(found.etag, if_none_match):
        return Answer(304, headers, "")
    return Answer(200, {**headers, "Content-Type": found.content_type}, found.body)


def root_path(request_path: str, route_path: str) -> str:
    """Return the prefix the app is served under: the request's path less the route's segments.

    Behind API Gateway the request path carries the stage (`/api/e/demo/city-10k` for the route
    path `/e/demo/city-10k`); locally it carries nothing. Anything unexpected gives "".
    """
    segments = [part for part in request_path.split("/") if part]
    drop = len([part for part in route_path.split("/") if part])
    root = "/" + "/".join(segments[: len(segments) - drop]) if len(segments) > drop else ""
    return root if _SAFE_ROOT.fullmatch(root) else ""


def index_page(*, table: PhotoTable, root: str) -> str:
    """Return the home page: every published event, latest race day first, as links."""
    published = events.published_events(table=table)
    items = "\n".join(
        _template("event-item.html").substitute(
            href=_escape(f"{root}/e/{event['org_id']}/{event['event_id']}"),
            name=_escape(event["name"]),
            date=_escape(event["date"]),
            date_label=_escape(_date_label(event["date"])),
            count=_escape(_count_label(event["photo_count"])),
        )
        for event in published
    )
    if not items:
        items = '<li class="empty">No events yet. Come back after the race.</li>'
    return _template("index.html").substitute(_common(root), events=items)


def event_page(org_id: str, event_id: str, *, gate: EventGate, root: str) -> str:
    """Return the event page's shell: its heading without JavaScript, the app's hooks with it.

    Raises InvalidId, or EventNotFound unless the event is published (as the API does).
    """
    record = gate.require_published(org_id, event_id)
    faces = events.faces_available(record)
    return _template("event.html").substitute(
        _common(root),
        org=_escape(org_id),
        event=_escape(event_id),
        name=_escape(record["name"]),
        date=_escape(record["date"]),
        date_label=_escape(_date_label(record["date"])),
        count=_escape(_count_label(int(record.get("photo_count") or 0))),
        faces="on" if faces else "off",
        selfie_hidden="" if faces else " hidden",
        thumbhash_js=_escape(asset_url("thumbhash.js", root)),
        app_js=_escape(asset_url("app.js", root)),
    )


def error_page(status: int, *, root: str) -> str:
    """Return the page for a status the web routes answer with (404, 500, 503)."""
    title, message = _ERRORS.get(status, _ERRORS[500])
    return _template("error.html").substitute(
        _common(root), title=_escape(title), message=_escape(message), status=status
    )


def page_headers(status: int) -> dict[str, str]:
    """Return the headers of an HTML page answered with `status`."""
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cache-Control": PAGE_CACHE if status == 200 else ERROR_CACHE,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


def asset_url(name: str, root: str) -> str:
    """Return the URL of an asset with its content hash."""
    return f"{root}/assets/{name}?v={assets()[name].version}"


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ERRORS = {
    404: (
        "Event not found",
        "There is no published event at this address. Check the link, or pick an event.",
    ),
    500: ("Something went wrong", "Something went wrong on our side. Try again in a moment."),
    503: ("Busy right now", "Too many runners are looking at once. Try again in a few seconds."),
}


def _matches(etag: str, if_none_match: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _common(root: str) -> dict[str, Any]:
    return {"home": _escape(f"{root}/"), "css": _escape(asset_url("app.css", root))}


@functools.cache
def _template(name: str) -> Template:
    return Template((WEB_DIR / name).read_text(encoding="utf-8"))


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _date_label(iso_date: str) -> str:
    try:
        day = date.fromisoformat(iso_date)
    except ValueError:
        return iso_date
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _count_label(count: int) -> str:
    return "1 photo" if count == 1 else f"{count:,} photos"
