"""Consent and "remove me": the face routes need `?consent=true`, and a runner can opt their face
out of an event's face search (POST /events/{org}/{event}/face-opt-out).

The first tests use the Rekognition fake (people by selfie colour, tests/support/api.py). The last
runs the app's real adapter against the sandbox's local Rekognition service with its real face
engine, on real portraits read in place from ../shared/eval-data/faces-dev (skipped without them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib import clients
from chalicelib.adapters.rekognition import Rekognition
from chalicelib.domain.errors import ThrottlingException
from chalicelib.domain.keys import OPTED_OUT_IMAGE_ID
from sandbox.rekognition_service import LocalRekognition
from tests.support.api import Unavailable, error_code, get, index_people, post_selfie, selfie, use_settings
from tests.support.ci import skip_unless_ci
from tests.support.photos import make_photo, publish, seed
from tests.support.rekognition import served

EVENT = "/events/acme/e1"
SELFIE, OPT_OUT = f"{EVENT}/selfie-search", f"{EVENT}/face-opt-out"
ALICE, ALICE_AND_BOB, BOB, NOBODY = (200, 30, 30), (30, 30, 200), (30, 200, 30), (240, 240, 240)


@pytest.fixture(autouse=True)
def published(table):
    publish(table, "acme", "e1")


def found(client, image: bytes) -> set[str]:
    status, body = post_selfie(client, SELFIE, image)
    assert status == 200, body
    return {match["photo"]["photo_id"] for match in body["matches"]}


def test_opt_out_without_consent_is_400_before_any_rekognition_call(client, rekognition):
    for url in (OPT_OUT, f"{OPT_OUT}?consent=no"):
        response = client.http.post(url, headers={"Content-Type": "image/jpeg"}, body=selfie(ALICE))
        assert response.status_code == 400 and error_code(json.loads(response.body)) == "ConsentRequired"
    assert rekognition.calls == []


def test_after_opting_out_no_selfie_of_that_person_finds_their_photos(client, table, rekognition):
    alone, with_bob, later = (make_photo("acme", "e1", n) for n in (1, 2, 3))
    seed(table, [(alone, ("1234",)), (with_bob, ("1234", "5678"))])
    index_people(rekognition, [(alone, ["alice"]), (with_bob, ["alice", "bob"])])
    assert found(client, selfie(ALICE)) == {alone.photo_id, with_bob.photo_id}

    status, body = post_selfie(client, OPT_OUT, selfie(ALICE))
    assert status == 200 and body["opted_out"] is True, body
    assert rekognition.calls[-1] == "index_face_image"
    (kept,) = [
        face
        for face, (_, image) in rekognition.collections[("acme", "e1")].items()
        if image == OPTED_OUT_IMAGE_ID
    ]
    assert body["face_id"] == kept

    # Photos processed later (and the same photos indexed again by a reprocess) stay hidden too.
    seed(table, [(later, ("1234",))])
    index_people(rekognition, [(later, ["alice"]), (alone, ["alice"])])
    assert found(client, selfie(ALICE)) == set()
    assert found(client, selfie(ALICE_AND_BOB)) == set()  # another photo with her face the largest
    # Anyone else still finds their own photos, shared ones included; bibs still list hers.
    assert found(client, selfie(BOB)) == {with_bob.photo_id}
    status, page = get(client, f"{EVENT}/bibs/1234/photos")
    assert {p["photo_id"] for p in page["photos"]} == {alone.photo_id, with_bob.photo_id, later.photo_id}


def test_opting_out_with_no_face_is_422_and_changes_nothing(client, table, rekognition):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    index_people(rekognition, [(photo, ["alice"])])
    status, body = post_selfie(client, OPT_OUT, selfie(NOBODY))
    assert status == 422 and error_code(body) == "NoFaceInImage"
    assert found(client, selfie(ALICE)) == {photo.photo_id}


def _unknown(table, monkeypatch):
    pass


def _bib_only(table, monkeypatch):
    publish(table, "acme", "x", faces_enabled=False)


def _expired(table, monkeypatch):
    publish(table, "acme", "x")
    table.update_event("acme", "x", faces_deleted_at="2025-06-01T00:00:00Z")


def _over_the_byte_limit(table, monkeypatch):
    publish(table, "acme", "x")
    use_settings(monkeypatch, selfie_max_bytes=100)


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        (_unknown, 404, "EventNotFound"),
        (_bib_only, 409, "FacesDisabled"),
        (_expired, 410, "FacesExpired"),
        (_over_the_byte_limit, 413, "SelfieTooLarge"),
    ],
)
def test_opt_out_refusals_cost_no_rekognition_call(
    client, table, rekognition, monkeypatch, setup, status, code
):
    setup(table, monkeypatch)
    answer_status, body = post_selfie(client, "/events/acme/x/face-opt-out", selfie(ALICE))
    assert (answer_status, error_code(body)) == (status, code)
    assert rekognition.calls == []


def test_opt_out_answers_in_the_api_error_shape(client, rekognition, monkeypatch):
    status, body = post_selfie(client, OPT_OUT, b"not an image at all", "image/jpeg")
    assert status == 415 and error_code(body) == "UnsupportedImageFormat"
    rekognition.fail("index_face_image", ThrottlingException("Rekognition throttled the call"))
    status, body = post_selfie(client, OPT_OUT, selfie(ALICE))
    assert status == 503 and error_code(body) == "ThrottlingException"
    monkeypatch.setattr(clients, "table", lambda: Unavailable(RuntimeError("boom")))
    clients.event_gate.cache_clear()
    status, body = post_selfie(client, OPT_OUT, selfie(ALICE))
    assert status == 500 and error_code(body) == "InternalError"
    clients.event_gate.cache_clear()


def test_opt_out_preflight_is_answered(client):
    response = client.http.options(OPT_OUT, headers={"Origin": "https://app.example"})
    assert response.status_code == 204
    response = client.http.options(
        "/events/acme/bad%23e/face-opt-out", headers={"Origin": "https://app.example"}
    )
    assert response.status_code == 400 and error_code(json.loads(response.body)) == "InvalidId"


# --- with real faces: the sandbox's Rekognition service and face engine ----------------------

FACES_DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval-data" / "faces-dev"
# id06 in four photos, id04 in two (identities.csv).
RUNNER = ("img62.jpg", "img16.jpg", "img17.jpg", "img61.jpg")
OTHER = ("img55.jpg", "img3.jpg")


class _NoOcr:
    def detect_text(self, image: bytes) -> dict:
        return {"TextDetections": []}


@pytest.fixture
def real_faces(monkeypatch):
    if not all((FACES_DEV / name).is_file() for name in RUNNER + OTHER):
        skip_unless_ci(f"eval photos not found in {FACES_DEV}")
    from sandbox.engines.faces import FaceEngine

    objects: dict[str, bytes] = {}
    service = LocalRekognition(_NoOcr(), FaceEngine(), lambda bucket, key, version: objects[key])
    with served(service) as client:
        adapter = Rekognition(client, "snaprace-test")
        monkeypatch.setattr(clients, "rekognition", lambda attempts=4: adapter)
        yield adapter, objects


def test_opt_out_with_real_faces_hides_the_runner_from_every_later_selfie(client, table, real_faces):
    adapter, objects = real_faces
    photos = {name: make_photo("acme", "e1", n) for n, name in enumerate(RUNNER[2:] + OTHER)}

    def index(name):
        photo = photos[name]
        objects[photo.processed_key] = (FACES_DEV / name).read_bytes()
        adapter.index_faces(
            "acme",
            "e1",
            "photos",
            photo.processed_key,
            external_image_id=photo.photo_id,
            max_faces=15,
            quality_filter="AUTO",
        )

    seed(table, [(photo, ("1234",)) for photo in photos.values()])
    index(RUNNER[2])
    index(OTHER[0])
    runner_selfie, other_selfie = (FACES_DEV / RUNNER[0]).read_bytes(), (FACES_DEV / OTHER[1]).read_bytes()
    assert found(client, runner_selfie) == {photos[RUNNER[2]].photo_id}

    status, body = post_selfie(client, OPT_OUT, runner_selfie)
    assert status == 200, body
    index(RUNNER[3])  # uploaded after the opt-out
    index(RUNNER[2])  # indexed again, as a reprocess does
    assert found(client, runner_selfie) == set()
    assert found(client, (FACES_DEV / RUNNER[1]).read_bytes()) == set()  # another photo of them
    assert found(client, other_selfie) == {photos[OTHER[0]].photo_id}
    status, page = get(client, f"{EVENT}/bibs/1234/photos")
    assert {p["photo_id"] for p in page["photos"]} == {p.photo_id for p in photos.values()}
