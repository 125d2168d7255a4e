"""A faithful in-memory fake of chalicelib.adapters.rekognition.Rekognition.

It keeps collections and faces like the service does, and can be told to raise errors. The same
contract tests run against it and against the real adapter (tests/test_rekognition_contract.py).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.domain.bibs import TextDetection
from chalicelib.domain.errors import CollectionNotFound, NoFaceInImage
from chalicelib.domain.model import FaceBox, FaceMatch, FaceSearch, IndexedFace

TextScript = Callable[[str, str], list[TextDetection]]  # (bucket, key) -> detections
# (bucket, key) -> person labels, largest first; a label may come with its box: (label, FaceBox).
FaceScript = Callable[[str, str], list]
PeopleScript = Callable[[bytes], list[str]]  # image bytes -> person labels, largest first
SimilarityScript = Callable[[str], float]  # face id -> how similar the service finds it (99 unless told)


class FakeRekognition:
    def __init__(
        self,
        text: TextScript | None = None,
        faces: FaceScript | None = None,
        people: PeopleScript | None = None,
        similarity: SimilarityScript | None = None,
        likeness: Callable[[str, str], float] | None = None,
    ) -> None:
        self._text = text or (lambda bucket, key: [])
        self._similarity = similarity or (lambda face_id: 99.0)
        self._faces = faces or (lambda bucket, key: [])
        self._people = people or (lambda image: [])
        # Similarity of two people's faces: 99 for the same person unless told otherwise.
        self._likeness = likeness or (lambda a, b: 99.0 if a == b else 0.0)
        # (org, event) -> face id -> (person, image)
        self.collections: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self.errors: dict[str, list[Exception] | Exception] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def fail(self, operation: str, error: Exception, times: int | None = None) -> None:
        """Make `operation` raise `error` the next `times` calls (None: every call)."""
        self.errors[operation] = error if times is None else [error] * times

    def _maybe_raise(self, operation: str) -> None:
        with self._lock:
            self.calls.append(operation)
            planned = self.errors.get(operation)
            if isinstance(planned, list):
                if planned:
                    raise planned.pop(0)
            elif planned is not None:
                raise planned

    def detect_text(self, bucket: str, key: str) -> list[TextDetection]:
        self._maybe_raise("detect_text")
        return list(self._text(bucket, key))

    def create_collection(self, org_id: str, event_id: str) -> None:
        self._maybe_raise("create_collection")
        with self._lock:
            self.collections.setdefault((org_id, event_id), {})

    def index_faces(
        self,
        org_id: str,
        event_id: str,
        bucket: str,
        key: str,
        *,
        external_image_id: str,
        max_faces: int,
        quality_filter: str,
    ) -> list[IndexedFace]:
        self._maybe_raise("index_faces")
        with self._lock:
            faces = self.collections.setdefault((org_id, event_id), {})
            new, indexed = {}, []
            for n, found in enumerate(self._faces(bucket, key)[:max_faces]):
                person, box = found if isinstance(found, tuple) else (found, _default_box(n))
                face_id = str(uuid.UUID(bytes=hashlib.md5(f"{key}/{person}/{len(faces)}".encode()).digest()))
                new[face_id] = (person, external_image_id)
                indexed.append(IndexedFace(face_id, box))
            faces.update(new)
        return indexed

    def search_faces(
        self, org_id: str, event_id: str, face_id: str, *, threshold: float, max_faces: int
    ) -> list[FaceMatch]:
        """The collection's other faces at least `threshold` like `face_id`'s person, best first."""
        self._maybe_raise("search_faces")
        with self._lock:
            if (org_id, event_id) not in self.collections:
                raise CollectionNotFound(f"{org_id}/{event_id}")
            faces = self.collections[(org_id, event_id)]
            if face_id not in faces:
                return []
            person = faces[face_id][0]
            matches = [
                FaceMatch(face_id=other, external_image_id=external, similarity=self._likeness(person, label))
                for other, (label, external) in faces.items()
                if other != face_id
            ]
        matches = [match for match in matches if match.similarity >= threshold]
        matches.sort(key=lambda match: -match.similarity)
        return matches[:max_faces]

    def delete_faces(self, org_id: str, event_id: str, face_ids: list[str]) -> None:
        self._maybe_raise("delete_faces")
        with self._lock:
            faces = self.collections.get((org_id, event_id), {})
            for face_id in face_ids:
                faces.pop(face_id, None)

    def delete_collection(self, org_id: str, event_id: str) -> bool:
        self._maybe_raise("delete_collection")
        with self._lock:
            return self.collections.pop((org_id, event_id), None) is not None

    def index_face_image(
        self, org_id: str, event_id: str, image: bytes, *, external_image_id: str, quality_filter: str
    ) -> list[str]:
        self._maybe_raise("index_face_image")
        people = self._people(image)[:1]  # the largest face, as MaxFaces=1 keeps
        with self._lock:
            faces = self.collections.setdefault((org_id, event_id), {})
            new = {
                f"{external_image_id}-{person}-{len(faces)}": (person, external_image_id) for person in people
            }
            faces.update(new)
        return list(new)

    def search_faces_by_image(
        self, org_id: str, event_id: str, image: bytes, *, threshold: float, max_faces: int
    ) -> FaceSearch:
        """Matches the indexed faces of the image's largest person at their scripted similarity
        (99 unless told), at or above the threshold, in no particular order."""
        self._maybe_raise("search_faces_by_image")
        people = self._people(image)
        with self._lock:
            if (org_id, event_id) not in self.collections:
                raise CollectionNotFound(f"{org_id}/{event_id}")
            if not people:
                raise NoFaceInImage("no face found in the image")
            scored = [
                FaceMatch(face_id=face_id, external_image_id=external, similarity=self._similarity(face_id))
                for face_id, (label, external) in self.collections[(org_id, event_id)].items()
                if label == people[0]
            ]
        matches = [match for match in scored if match.similarity >= threshold]
        return FaceSearch(searched=FaceBox(0.1, 0.1, 0.5, 0.5, 99.0), matches=tuple(matches[:max_faces]))


def _default_box(n: int) -> FaceBox:
    # Side by side along the top of the photo, each face 0.1 wide: no bib lies under them unless a
    # test puts one there.
    return FaceBox(0.05 + 0.15 * n, 0.05, 0.1, 0.1, 99.0)


@dataclass(frozen=True)
class EngineFace:
    """A face as the sandbox's offline engines return it (what the local Rekognition service needs)."""

    left: float
    top: float
    width: float
    height: float
    confidence: float
    quality: int
    embedding: tuple[float, ...]
