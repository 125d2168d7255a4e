"""Finding every photo of a runner: face matches for a bib, start lists, names, "did you mean".

Face matches run at query time: a bib search's last page asks Rekognition SearchFaces for the faces
linked to the bib (see domain.linking), at most `link_search_faces` calls. bench/runner_recall.py
measures this against doing the same at ingest time (a SearchFaces call for every indexed face).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.adapters.table import PhotoTable
from chalicelib.config import Settings
from chalicelib.domain.errors import CollectionNotFound, EventNotFound, InvalidName, InvalidStartList
from chalicelib.domain.model import FaceMatch, iso_utc
from chalicelib.domain.runners import Runner, find_runners, fold, parse_start_list, suggestions
from chalicelib.services import events
from chalicelib.services.events import EventGate

log = logging.getLogger(__name__)

MAX_NAME_QUERY = 100


def face_matches(
    org_id: str,
    event_id: str,
    bib: str,
    *,
    entries: list[tuple[str, str | None]] | None = None,
    rekognition: Rekognition,
    table: PhotoTable,
    settings: Settings,
) -> list[tuple[dict[str, Any], float]]:
    """Return (photo record, similarity) for photos showing the bib's runner by face only, best first.

    A face found by SearchFaces counts when it reaches `link_threshold` and beats, by
    `link_margin`, the best match the same search found among known other people: the faces of
    the bib's linked photos that are not the linked face (one runner appears once in a photo).
    Runners who run together appear together, so a lookalike neighbour sets the bar and their
    photos never swap bibs. A face linked to another bib is that runner's, never this one's.
    `entries` are the bib's (photo_id, linked face id or None) when the caller has them all;
    otherwise they are read (one Query).
    """
    if entries is None:
        entries = table.bib_faces(org_id, event_id, bib)
    shown = {photo_id for photo_id, _ in entries}
    runner_face = {photo_id: face_id for photo_id, face_id in entries if face_id}
    linked = list(runner_face.values())[: settings.link_search_faces]
    if not linked:
        return []
    floor = max(0.0, settings.link_threshold - settings.link_margin)

    def search(face_id: str) -> list[FaceMatch]:
        return rekognition.search_faces(
            org_id, event_id, face_id, threshold=floor, max_faces=settings.search_max_faces
        )

    try:
        with ThreadPoolExecutor(max_workers=len(linked)) as pool:
            found = list(pool.map(search, linked))
    except CollectionNotFound:
        return []
    best: dict[str, tuple[float, str]] = {}
    for matches in found:
        others = [
            m.similarity
            for m in matches
            if m.external_image_id in runner_face and m.face_id != runner_face[m.external_image_id]
        ]
        needed = max([settings.link_threshold, *(similarity + settings.link_margin for similarity in others)])
        for match in matches:
            photo_id = match.external_image_id
            if not photo_id or photo_id in shown or match.similarity < needed:
                continue
            if match.similarity > best.get(photo_id, (0.0, ""))[0]:
                best[photo_id] = (match.similarity, match.face_id)
    records = {item["photo_id"]: item for item in table.photos(org_id, event_id, best)}
    result = []
    for photo_id, (similarity, face_id) in best.items():
        record = records.get(photo_id)
        if record is None:
            continue
        if any(
            other != bib and linked_face == face_id
            for other, linked_face in (record.get("links") or {}).items()
        ):
            continue
        result.append((record, similarity))
    result.sort(key=lambda pair: (-pair[1], pair[0]["photo_id"]))
    log.info(
        "face matches org=%s event=%s bib=%s searched=%d found=%d",
        org_id,
        event_id,
        bib,
        len(linked),
        len(result),
    )
    return result[: settings.search_max_faces]


def bib_suggestions(org_id: str, event_id: str, bib: str, *, table: PhotoTable) -> list[dict[str, Any]]:
    """Return up to 3 of the event's bibs one edit from `bib`, with their photo counts (one read)."""
    return suggestions(bib, table.bib_counts(org_id, event_id))


def put_start_list(
    org_id: str, event_id: str, body: bytes, *, table: PhotoTable, settings: Settings
) -> dict[str, Any]:
    """Replace an event's start list with a CSV `bib,name[,category]`; return {"runners": count}.

    It applies to photos processed from now on (reprocess the event to apply it to earlier ones).
    Raises EventNotFound or InvalidStartList.
    """
    events.check_ids(org_id, event_id)
    record = table.event(org_id, event_id)
    if record is None:
        raise EventNotFound(f"no event {org_id}/{event_id}: create it first")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidStartList("the start list is not UTF-8 text") from exc
    runners = parse_start_list(text, events.bib_rules_for(record, settings.bib_rules))
    table.put_start_list(
        org_id,
        event_id,
        {runner.bib: [runner.name, runner.category] for runner in runners},
        now=iso_utc(datetime.now(UTC)),
    )
    log.info("start list org=%s event=%s runners=%d", org_id, event_id, len(runners))
    return {"runners": len(runners)}


def runners_named(
    org_id: str, event_id: str, name: str | None, *, table: PhotoTable, gate: EventGate
) -> dict[str, Any]:
    """Return the start list's runners whose name matches `name`, with their bibs and photo counts."""
    gate.require_published(org_id, event_id)
    query = (name or "").strip()
    if not fold(query).split() or len(query) > MAX_NAME_QUERY:
        raise InvalidName(f"send ?name= with 1 to {MAX_NAME_QUERY} characters of a runner's name")
    listed = table.start_list(org_id, event_id) or {}
    runners = [
        Runner(bib, str(entry[0]), entry[1] if len(entry) > 1 else None) for bib, entry in listed.items()
    ]
    found = find_runners(query, runners)
    counts = table.bib_counts(org_id, event_id) if found else {}
    return {
        "name": query,
        "runners": [{**runner.to_dict(), "photo_count": counts.get(runner.bib, 0)} for runner in found],
    }
