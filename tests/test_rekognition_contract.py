"""One contract, two implementations: the in-memory fake the unit tests use, and the app's real
adapter talking to the sandbox's local Rekognition service over HTTP.

Both are driven by the same "world": which people each image shows.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.domain.bibs import TextDetection
from chalicelib.domain.errors import CollectionNotFound, NoFaceInImage
from sandbox.rekognition_service import LocalRekognition
from tests.support.fakes import EngineFace as Face
from tests.support.fakes import FakeRekognition
from tests.support.rekognition import served

COLOURS = {"alice": (200, 20, 20), "bob": (20, 200, 20), "nobody": (250, 250, 250)}


def image_of(*people: str) -> bytes:
    """A PNG whose stripes stand for the people in it, largest (widest stripe) first."""
    width = 40 * (len(people) or 1)
    picture = Image.new("RGB", (width + 10 * len(people), 60), COLOURS["nobody"])
    x = 0
    for n, person in enumerate(people):
        stripe = 40 - 10 * n
        picture.paste(COLOURS[person], (x, 0, x + stripe, 60))
        x += stripe + 5
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def people_in(image: bytes) -> list[str]:
    picture = Image.open(io.BytesIO(image)).convert("RGB")
    seen, last = [], None
    for x in range(picture.width):
        colour = picture.getpixel((x, 30))
        person = next((name for name, c in COLOURS.items() if c == colour and name != "nobody"), None)
        if person and person != last:
            seen.append(person)
        last = person
    return seen


class WorldFaces:
    def detect(self, image):
        return [
            Face(0.1 * n, 0.1, 0.3 / (n + 1), 0.5, 99.0, 3, (float(sorted(COLOURS).index(p)),))
            for n, p in enumerate(people_in(image))
        ]

    def similarity(self, a, b):
        return 99.0 if a == b else 10.0


class WorldOcr:
    def detect_text(self, image):
        box = {"Width": 0.2, "Height": 0.1, "Left": 0.1, "Top": 0.1}
        polygon = [{"X": 0.1, "Y": 0.1}, {"X": 0.3, "Y": 0.1}, {"X": 0.3, "Y": 0.2}, {"X": 0.1, "Y": 0.2}]
        return {
            "TextDetections": [
                {
                    "DetectedText": p.upper(),
                    "Type": "WORD",
                    "Id": n,
                    "Confidence": 95.0,
                    "Geometry": {"BoundingBox": box, "Polygon": polygon},
                }
                for n, p in enumerate(people_in(image))
            ]
        }


@pytest.fixture(params=["fake", "local_service"])
def world(request):
    objects: dict[str, bytes] = {}
    if request.param == "fake":
        fake = FakeRekognition(
            text=lambda bucket, key: [
                TextDetection(p.upper(), 95.0, "WORD") for p in people_in(objects[key])
            ],
            faces=lambda bucket, key: people_in(objects[key]),
            people=people_in,
        )
        yield fake, objects
        return
    service = LocalRekognition(WorldOcr(), WorldFaces(), lambda bucket, key, version: objects[key])
    with served(service) as client:
        yield Rekognition(client, "snaprace-test"), objects


def index(rekognition, key, photo_id):
    return rekognition.index_faces(
        "acme", "e1", "photos", key, external_image_id=photo_id, max_faces=15, quality_filter="AUTO"
    )


def test_index_faces_creates_the_collection_on_first_use(world):
    rekognition, objects = world
    objects["p1.png"] = image_of("alice", "bob")
    faces = index(rekognition, "p1.png", "P1")
    assert len({face.face_id for face in faces}) == 2
    assert all(face.box.width > 0 and face.box.height > 0 for face in faces)


def test_search_finds_every_photo_of_the_largest_face(world):
    rekognition, objects = world
    objects.update(
        {"p1.png": image_of("alice"), "p2.png": image_of("bob", "alice"), "p3.png": image_of("bob")}
    )
    for n in (1, 2, 3):
        index(rekognition, f"p{n}.png", f"P{n}")
    found = rekognition.search_faces_by_image(
        "acme", "e1", image_of("alice", "bob"), threshold=85, max_faces=50
    )
    assert sorted(m.external_image_id for m in found.matches) == ["P1", "P2"]
    assert all(m.similarity >= 85 for m in found.matches)
    assert found.searched.area > 0


def test_search_without_a_collection_is_collection_not_found(world):
    rekognition, _ = world
    with pytest.raises(CollectionNotFound):
        rekognition.search_faces_by_image("acme", "none", image_of("alice"), threshold=85, max_faces=50)


def test_search_with_no_face_is_no_face_in_image(world):
    rekognition, objects = world
    objects["p1.png"] = image_of("alice")
    index(rekognition, "p1.png", "P1")
    with pytest.raises(NoFaceInImage):
        rekognition.search_faces_by_image("acme", "e1", image_of(), threshold=85, max_faces=50)


def test_index_face_image_keeps_only_the_largest_face_under_the_given_id(world):
    rekognition, _ = world
    (face_id,) = rekognition.index_face_image(
        "acme", "e1", image_of("bob", "alice"), external_image_id="opted-out", quality_filter="AUTO"
    )
    found = rekognition.search_faces_by_image("acme", "e1", image_of("bob"), threshold=85, max_faces=50)
    assert [(m.face_id, m.external_image_id) for m in found.matches] == [(face_id, "opted-out")]
    alice = rekognition.search_faces_by_image("acme", "e1", image_of("alice"), threshold=85, max_faces=50)
    assert alice.matches == ()
    assert (
        rekognition.index_face_image(
            "acme", "e1", image_of(), external_image_id="opted-out", quality_filter="AUTO"
        )
        == []
    )


def test_detect_text_returns_text_detections(world):
    rekognition, objects = world
    objects["p1.png"] = image_of("bob")
    (detection,) = rekognition.detect_text("photos", "p1.png")
    assert (detection.text, detection.confidence, detection.kind) == ("BOB", 95.0, "WORD")


def test_search_faces_finds_the_same_person_in_other_photos_only(world):
    rekognition, objects = world
    objects.update(
        {"p1.png": image_of("alice"), "p2.png": image_of("bob", "alice"), "p3.png": image_of("bob")}
    )
    (alice,) = index(rekognition, "p1.png", "P1")
    for n in (2, 3):
        index(rekognition, f"p{n}.png", f"P{n}")
    matches = rekognition.search_faces("acme", "e1", alice.face_id, threshold=85, max_faces=50)
    assert [m.external_image_id for m in matches] == ["P2"]
    assert all(m.face_id != alice.face_id and m.similarity >= 85 for m in matches)
    assert (
        rekognition.search_faces(
            "acme", "e1", "00000000-0000-0000-0000-000000000000", threshold=85, max_faces=50
        )
        == []
    )
    with pytest.raises(CollectionNotFound):
        rekognition.search_faces("acme", "none", alice.face_id, threshold=85, max_faces=50)
