"""Search services behind the HTTP API: gallery, one photo, bib, photographer and selfie search.

Plain functions with their dependencies passed in. They validate every input (raising the
InvalidRequest family, NoFaceInImage, SelfieTooLarge, PhotoNotFound) and return JSON-ready dicts;
app.py only picks HTTP status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import Page, PhotoTable
from chalicelib.config import Settings
from chalicelib.domain import ids, imaging, keys
from chalicelib.domain.bibs import normalise_bib
from chalicelib.domain.errors import (
    CollectionNotFound,
    ConsentRequired,
    EmptyBody,
    InvalidBib,
    InvalidHandle,
    InvalidId,
    NoFaceInImage,
    PhotoNotFound,
    SelfieTooLarge,
)
from chalicelib.domain.model import FaceBox, failed_view, photo_view
from chalicelib.services import events, listing, runners
from chalicelib.services.events import EventGate

log = logging.getLogger(__name__)

_ALL_FACES = 4096  # SearchFacesByImage's largest MaxFaces

UrlFor = Callable[[dict[str, Any], str], str]  # (photo item, object key) -> URL


def url_builder(settings: Settings, storage: Storage) -> UrlFor:
    """Return a function giving an image's URL: under the CDN base URL, else presigned S3.

    Which one is configuration (CDN_BASE_URL, set from the stack in prod), not code per stage.
    """
    if settings.cdn_base_url:
        base = settings.cdn_base_url
        return lambda item, key: f"{base}/{quote(key)}"
    expires = settings.url_expires_seconds
    return lambda item, key: storage.presigned_get_url(item["bucket"], key, expires_in=expires)


def gallery(
    org_id: str,
    event_id: str,
    *,
    limit: str | None,
    cursor: str | None,
    table: PhotoTable,
    gate: EventGate,
    url_for: UrlFor,
    settings: Settings,
) -> dict[str, Any]:
    """Return one page of an event's processed photos, newest capture first."""
    gate.require_published(org_id, event_id)
    return listing.page(
        lambda item: photo_view(item, url_for),
        settings,
        ("gallery", org_id, event_id),
        limit=limit,
        cursor=cursor,
        fetch=lambda size, after: table.gallery_page(org_id, event_id, limit=size, after=after),
    )


def bib_photos(
    org_id: str,
    event_id: str,
    bib: str,
    *,
    limit: str | None,
    cursor: str | None,
    table: PhotoTable,
    gate: EventGate,
    url_for: UrlFor,
    settings: Settings,
    rekognition: Rekognition,
) -> dict[str, Any]:
    """Return one page of the photos showing a bib (normalised under the event's rules).

    Photos where the bib was read come first (`"match": "bib"`, one Query a page); the last page
    adds the photos where the runner's linked face appears without a readable bib
    (`"match": "face"`, see services.runners). A search that finds nothing suggests close bibs.
    """
    record = gate.require_published(org_id, event_id)
    rules = events.bib_rules_for(record, settings.bib_rules)
    normalised = normalise_bib(bib, rules)
    if normalised is None:
        raise InvalidBib(f"{bib!r} is not a bib number of this event (like 1234 or A1234)")
    fetched: list[dict[str, Any]] = []

    def fetch(size: int, after: dict[str, Any] | None) -> Page:
        found = table.bib_page(org_id, event_id, normalised, limit=size, after=after)
        fetched.extend(found.items)
        return found

    page = listing.page(
        lambda item: {**photo_view(item, url_for), "match": "bib"},
        settings,
        ("bib", org_id, event_id, normalised),
        limit=limit,
        cursor=cursor,
        fetch=fetch,
    )
    if page["next_cursor"] is None and events.faces_available(record):
        # A one-page search already holds every bib entry (and its linked face): no second read.
        entries = [(item["photo_id"], item.get("face_id")) for item in fetched] if cursor is None else None
        matches = runners.face_matches(
            org_id,
            event_id,
            normalised,
            entries=entries,
            rekognition=rekognition,
            table=table,
            settings=settings,
        )
        page["photos"] += [{**photo_view(item, url_for), "match": "face"} for item, _ in matches]
    result = {"bib": normalised, **page}
    if cursor is None and not page["photos"]:
        result["suggestions"] = runners.bib_suggestions(org_id, event_id, normalised, table=table)
    return result


def photographer_photos(
    org_id: str,
    event_id: str,
    handle: str,
    *,
    limit: str | None,
    cursor: str | None,
    table: PhotoTable,
    gate: EventGate,
    url_for: UrlFor,
    settings: Settings,
) -> dict[str, Any]:
    """Return one page of one photographer's photos in an event (`@Handle` is `handle`)."""
    gate.require_published(org_id, event_id)
    normalised = keys.normalise_handle(handle)
    if normalised is None or not keys.is_valid_handle(normalised):
        raise InvalidHandle(f"{handle!r} is not a photographer handle (1-64 characters, no '#' or '/')")
    page = listing.page(
        lambda item: photo_view(item, url_for),
        settings,
        ("photographer", org_id, event_id, normalised),
        limit=limit,
        cursor=cursor,
        fetch=lambda size, after: table.photographer_page(
            org_id, event_id, normalised, limit=size, after=after
        ),
    )
    return {"photographer": normalised, **page}


def photo(
    org_id: str, event_id: str, photo_id: str, *, table: PhotoTable, gate: EventGate, url_for: UrlFor
) -> dict[str, Any]:
    """Return one photo, or its failure record; raise PhotoNotFound if neither exists."""
    gate.require_published(org_id, event_id)
    if not ids.is_photo_id(photo_id):
        raise InvalidId(f"{photo_id!r} is not a photo id (26 characters of Crockford base32)")
    item = table.photo(org_id, event_id, photo_id)
    if item is not None:
        return photo_view(item, url_for)
    failed = table.failure(org_id, event_id, photo_id)
    if failed is not None:
        return failed_view(failed)
    raise PhotoNotFound(f"no photo {photo_id} in event {org_id}/{event_id}")


def selfie_search(
    org_id: str,
    event_id: str,
    body: bytes | None,
    *,
    consent: str | None,
    rekognition: Rekognition,
    table: PhotoTable,
    gate: EventGate,
    url_for: UrlFor,
    settings: Settings,
) -> dict[str, Any]:
    """Return the event's photos showing the selfie's (largest) face, best similarity first.

    One Rekognition call (SearchFacesByImage), and none at all for a refused request. A selfie that
    matches a face indexed to opt out answers no photos.
    """
    image = _selfie_image(org_id, event_id, body, consent=consent, gate=gate, settings=settings)
    try:
        # Every match Rekognition has (its maximum): an opt-out face must never fall off the end.
        found = rekognition.search_faces_by_image(
            org_id, event_id, image, threshold=settings.search_threshold, max_faces=_ALL_FACES
        )
    except CollectionNotFound:
        log.info("selfie search org=%s event=%s: no collection yet", org_id, event_id)
        return {"matches": []}
    result: dict[str, Any] = {"matches": [], "searched_face": _box_view(found.searched)}
    if any(match.external_image_id == keys.OPTED_OUT_IMAGE_ID for match in found.matches):
        log.info("selfie search org=%s event=%s: the face opted out of face search", org_id, event_id)
        return result
    best: dict[str, float] = {}
    for match in found.matches:
        if match.external_image_id and ids.is_photo_id(match.external_image_id):
            best[match.external_image_id] = max(best.get(match.external_image_id, 0.0), match.similarity)
    ranked = sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))[: settings.search_max_faces]
    by_id = {item["photo_id"]: item for item in table.photos(org_id, event_id, dict(ranked))}
    result["matches"] = [
        {"photo": photo_view(by_id[pid], url_for), "similarity": round(similarity, 3)}
        for pid, similarity in ranked
        if pid in by_id
    ]
    if len(result["matches"]) < len(ranked):
        log.warning(
            "selfie search org=%s event=%s: %d matched faces have no photo item",
            org_id,
            event_id,
            len(ranked) - len(result["matches"]),
        )
    log.info("selfie search org=%s event=%s matches=%d", org_id, event_id, len(result["matches"]))
    return result


def face_opt_out(
    org_id: str,
    event_id: str,
    body: bytes | None,
    *,
    consent: str | None,
    rekognition: Rekognition,
    gate: EventGate,
    settings: Settings,
) -> dict[str, Any]:
    """Index the selfie's largest face as opted out of the event's face search; return its face id.

    From then on a selfie search whose face matches it answers no photos, whenever the photos were
    indexed. Their photos stay listed by bib. Raises NoFaceInImage when no usable face is seen.
    """
    image = _selfie_image(org_id, event_id, body, consent=consent, gate=gate, settings=settings)
    face_ids = rekognition.index_face_image(
        org_id,
        event_id,
        image,
        external_image_id=keys.OPTED_OUT_IMAGE_ID,
        quality_filter=settings.index_quality_filter,
    )
    if not face_ids:
        raise NoFaceInImage("no clear face found in the selfie: use a front-facing photo of yourself")
    log.info("face opt-out org=%s event=%s face=%s", org_id, event_id, face_ids[0])
    return {"opted_out": True, "face_id": face_ids[0]}


def _selfie_image(
    org_id: str,
    event_id: str,
    body: bytes | None,
    *,
    consent: str | None,
    gate: EventGate,
    settings: Settings,
) -> bytes:
    """Return the selfie as a JPEG fit for Rekognition, after every check that needs no call to it."""
    events.require_faces(gate.require_published(org_id, event_id))
    if consent != "true":
        raise ConsentRequired(
            "face search needs the runner's consent: send ?consent=true once they have accepted"
        )
    if not body:
        raise EmptyBody("send the selfie as the request body (image/jpeg or image/png)")
    if len(body) > settings.selfie_max_bytes:
        raise SelfieTooLarge(f"selfie is {len(body)} bytes, over the limit of {settings.selfie_max_bytes}")
    # Decoded by content whatever the Content-Type said (its pixel count checked from the header
    # first), upright, and small enough for Rekognition's 5 MB / dimension limits.
    image, _, _ = imaging.analysis_jpeg(
        body, max_side=settings.selfie_max_side, max_pixels=settings.selfie_max_pixels
    )
    return image


def _box_view(box: FaceBox) -> dict[str, float]:
    return {
        "left": round(box.left, 4),
        "top": round(box.top, 4),
        "width": round(box.width, 4),
        "height": round(box.height, 4),
    }


def check_event(org_id: str, event_id: str) -> None:
    """Raise InvalidId unless both ids are well formed."""
    events.check_ids(org_id, event_id)
