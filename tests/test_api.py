"""The search API through chalice.test.Client, with moto DynamoDB/S3 and a Rekognition fake."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from urllib.parse import parse_qs, quote, urlparse

import boto3
import pytest
from chalice.test import Client
from PIL import Image

import app as snaprace
from chalicelib import clients, pipeline
from chalicelib.config import Settings
from chalicelib.cursors import encode_cursor
from chalicelib.errors import ThrottlingException
from chalicelib.model import Failure, failed_item
from chalicelib.table import Table
from sandbox.stage import PROJECT_DIR, stage_environment
from tests.api_helpers import make_photo, seed
from tests.conftest import STAGE
from tests.fakes import FakeRekognition

# Selfies in these tests are solid-colour images: the fake "sees" a person per colour.
PEOPLE = {(200, 30, 30): ["alice"], (30, 200, 30): ["bob"], (30, 30, 200): ["alice", "bob"], (240, 240, 240): []}


def people_in(image: bytes) -> list[str]:
    pixel = Image.open(io.BytesIO(image)).convert("RGB").getpixel((0, 0))
    nearest = min(PEOPLE, key=lambda c: sum(abs(a - b) for a, b in zip(c, pixel)))
    return PEOPLE[nearest]


def selfie(colour, size=(400, 400), fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def rekognition(monkeypatch):
    fake = FakeRekognition(people=people_in)
    monkeypatch.setattr(clients, "rekognition", lambda: fake)
    return fake


@pytest.fixture
def table(resources):
    return Table(boto3.client("dynamodb"), resources.table_name)


@pytest.fixture
def client(resources, rekognition):
    return Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))


def get(client, path, **headers):
    response = client.http.get(path, headers=headers)
    return response.status_code, json.loads(response.body) if response.body else None


def post_selfie(client, path, body, content_type="image/jpeg"):
    response = client.http.post(path, headers={"Content-Type": content_type}, body=body)
    return response.status_code, json.loads(response.body) if response.body else None


def error_code(body):
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]["code"]


def walk(client, path, limit):
    """Follow next_cursor from the first page to the last; return the pages."""
    pages, cursor = [], None
    while True:
        url = f"{path}?limit={limit}" + (f"&cursor={quote(cursor)}" if cursor else "")
        status, body = get(client, url)
        assert status == 200, body
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


# --- gallery ---------------------------------------------------------------------------------


def test_gallery_walks_250_photos_in_pages_of_100_newest_first_without_gaps(client, table):
    seed(table, [(make_photo("acme", "city-10k", n), ()) for n in range(250)])
    pages = walk(client, "/events/acme/city-10k/photos", 100)
    assert [len(page["photos"]) for page in pages] == [100, 100, 50]
    photos = [photo for page in pages for photo in page["photos"]]
    assert len({p["photo_id"] for p in photos}) == 250
    captured = [p["captured_at"] for p in photos]
    assert captured == sorted(captured, reverse=True)
    assert photos[0]["original_filename"] == "IMG_00249.jpg"


def test_gallery_photo_has_the_contract_fields(client, table):
    photo = make_photo("acme", "city-10k", 1, photographer="snap.shooter")
    seed(table, [(photo, ("1234",))])
    status, body = get(client, "/events/acme/city-10k/photos")
    assert status == 200
    (shown,) = body["photos"]
    assert shown == {
        "photo_id": photo.photo_id,
        "org_id": "acme",
        "event_id": "city-10k",
        "status": "PROCESSED",
        "url": shown["url"],
        "width": 2048,
        "height": 1365,
        "thumbhash": photo.thumbhash,
        "bibs": ["1234"],
        "photographer": "snap.shooter",
        "captured_at": "2025-05-04T08:00:01Z",
        "original_filename": "IMG_00001.jpg",
    }
    assert body["next_cursor"] is None


def test_gallery_hides_failed_photos_but_they_can_be_fetched(client, table):
    seed(table, [(make_photo("acme", "e1", 1), ())])
    failure = Failure(error="CorruptImage", cause="JPEG is truncated", failed_at="2025-05-04T09:00:00Z")
    failed_id = make_photo("acme", "e1", 2).photo_id
    table.put_item(failed_item("acme", "e1", failed_id, "acme/e1/raw/broken.jpg", failure))
    status, body = get(client, "/events/acme/e1/photos")
    assert [p["original_filename"] for p in body["photos"]] == ["IMG_00001.jpg"]
    status, body = get(client, f"/events/acme/e1/photos/{failed_id}")
    assert status == 200
    assert body["status"] == "FAILED"
    assert body["reason"] == {"code": "CorruptImage", "message": "JPEG is truncated"}
    assert body["original_filename"] == "broken.jpg"


def test_unknown_event_is_an_empty_list(client):
    assert get(client, "/events/acme/never-happened/photos") == (200, {"photos": [], "next_cursor": None})


def test_presigned_url_points_at_the_processed_copy(client, table, resources):
    photo = make_photo("acme", "e1", 1, bucket=resources.bucket)
    seed(table, [(photo, ())])
    url = urlparse(get(client, "/events/acme/e1/photos")[1]["photos"][0]["url"])
    assert url.path.endswith(f"/acme/e1/processed/{photo.photo_id}.jpg")
    assert "X-Amz-Signature" in parse_qs(url.query) and parse_qs(url.query)["X-Amz-Expires"] == ["3600"]


def test_cdn_url_when_a_cdn_is_configured(client, table, monkeypatch):
    settings = replace(Settings.from_env(stage_environment(STAGE)), cdn_base_url="https://cdn.example/photos")
    monkeypatch.setattr(clients, "settings", lambda: settings)
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    url = get(client, "/events/acme/e1/photos")[1]["photos"][0]["url"]
    assert url == f"https://cdn.example/photos/acme/e1/processed/{photo.photo_id}.jpg"


# --- one photo -------------------------------------------------------------------------------


def test_get_photo(client, table):
    photo = make_photo("acme", "e1", 7)
    seed(table, [(photo, ("0042",))])
    status, body = get(client, f"/events/acme/e1/photos/{photo.photo_id}")
    assert status == 200 and body["photo_id"] == photo.photo_id and body["bibs"] == ["0042"]


def test_unknown_photo_is_404(client):
    status, body = get(client, "/events/acme/e1/photos/01JTB2Y4X0ABCDEFGHJKMNPQRS")
    assert status == 404 and error_code(body) == "PhotoNotFound"


def test_malformed_photo_id_is_400(client):
    status, body = get(client, "/events/acme/e1/photos/not-a-ulid")
    assert status == 400 and error_code(body) == "InvalidId"


# --- bibs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["A1234", "%201234%20", "1234", "a1234"])
def test_bib_is_normalised_like_ingestion(client, table, typed):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ("1234",)), (make_photo("acme", "e1", 2), ("5678",))])
    status, body = get(client, f"/events/acme/e1/bibs/{typed}/photos")
    assert status == 200, body
    assert body["bib"] == "1234"
    assert [p["photo_id"] for p in body["photos"]] == [photo.photo_id]


def test_bib_search_returns_each_photo_once_even_when_the_bib_appears_twice(client, table, resources):
    photo = make_photo("acme", "e1", 1, bucket=resources.bucket).to_dict()
    event = {"bucket": resources.bucket, "key": photo["raw_key"], "version_id": None, "etag": "e", "size": 1,
             "uploaded_at": "2025-05-04T09:00:00Z", "photo": photo,
             "analysis": {"text": {"bibs": ["1234", "1234"], "error": None}, "faces": {"face_ids": [], "error": None}}}
    pipeline.fanout(event, table=table)
    status, body = get(client, "/events/acme/e1/bibs/1234/photos")
    assert [p["photo_id"] for p in body["photos"]] == [photo["photo_id"]]


def test_bib_pages_walk_without_duplicates(client, table):
    seed(table, [(make_photo("acme", "e1", n), ("777",)) for n in range(25)])
    pages = walk(client, "/events/acme/e1/bibs/777/photos", 10)
    ids = [p["photo_id"] for page in pages for p in page["photos"]]
    assert [len(page["photos"]) for page in pages] == [10, 10, 5] and len(set(ids)) == 25


def test_org_a_never_sees_org_b_photos_with_the_same_event_and_bib(client, table):
    mine, theirs = make_photo("org-a", "marathon", 1), make_photo("org-b", "marathon", 2)
    seed(table, [(mine, ("1234",)), (theirs, ("1234",))])
    for org, expected in (("org-a", mine), ("org-b", theirs)):
        for path in (f"/events/{org}/marathon/bibs/1234/photos", f"/events/{org}/marathon/photos"):
            assert [p["photo_id"] for p in get(client, path)[1]["photos"]] == [expected.photo_id]


@pytest.mark.parametrize("bib", ["12", "1234567", "AB123", "0000", "12-34"])
def test_malformed_bib_is_400(client, bib):
    status, body = get(client, f"/events/acme/e1/bibs/{bib}/photos")
    assert status == 400 and error_code(body) == "InvalidBib"


# --- photographers ---------------------------------------------------------------------------


@pytest.mark.parametrize("handle", ["snap.shooter", "@Snap.Shooter", "%40snap.shooter"])
def test_photographer_handles_match_however_typed(client, table, handle):
    photo = make_photo("acme", "run-5k", 1, photographer="snap.shooter")
    seed(table, [(photo, ()), (make_photo("acme", "run-5k", 2, photographer="other"), ())])
    status, body = get(client, f"/events/acme/run-5k/photographers/{handle}/photos")
    assert status == 200, body
    assert body["photographer"] == "snap.shooter"
    assert [p["photo_id"] for p in body["photos"]] == [photo.photo_id]


def test_photographer_listing_does_not_leak_across_events_sharing_a_prefix(client, table):
    seed(table, [(make_photo("acme", "run-5k", 1, photographer="p"), ()),
                 (make_photo("acme", "run-5k-2025", 2, photographer="p"), ())])
    body = get(client, "/events/acme/run-5k/photographers/p/photos")[1]
    assert [p["event_id"] for p in body["photos"]] == ["run-5k"]


def test_malformed_handle_is_400(client):
    status, body = get(client, "/events/acme/e1/photographers/%40/photos")
    assert status == 400 and error_code(body) == "InvalidHandle"


# --- bad paging and ids ----------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-5", "ten", "1.5"])
def test_limit_outside_1_to_100_is_400(client, limit):
    status, body = get(client, f"/events/acme/e1/photos?limit={limit}")
    assert status == 400 and error_code(body) == "InvalidLimit"


@pytest.mark.parametrize("path", ["/events/bad%23org/e1/photos", "/events/acme/-e1/photos", f"/events/acme/{'x' * 65}/photos"])
def test_malformed_ids_are_400(client, path):
    status, body = get(client, path)
    assert status == 400 and error_code(body) == "InvalidId"


def test_cursor_that_is_not_ours_is_400(client, table):
    for cursor in ["garbage", "a.b", "%E2%9C%93.x", "eyJzIjoiZ2FsbGVyeSJ9." + "A" * 43]:
        status, body = get(client, f"/events/acme/e1/photos?cursor={cursor}")
        assert status == 400 and error_code(body) == "InvalidCursor", cursor


def test_altered_cursor_is_400(client, table):
    seed(table, [(make_photo("acme", "e1", n), ()) for n in range(3)])
    cursor = get(client, "/events/acme/e1/photos?limit=1")[1]["next_cursor"]
    body, signature = cursor.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    status, response = get(client, f"/events/acme/e1/photos?cursor={quote(flipped + '.' + signature)}")
    assert status == 400 and error_code(response) == "InvalidCursor"


def test_cursor_from_another_listing_is_400(client, table):
    seed(table, [(make_photo("acme", "e1", n), ()) for n in range(3)])
    cursor = get(client, "/events/acme/e1/photos?limit=1")[1]["next_cursor"]
    status, body = get(client, f"/events/acme/e2/photos?cursor={quote(cursor)}")
    assert status == 400 and error_code(body) == "InvalidCursor"


def test_cursor_signed_with_another_secret_is_400(client):
    forged = encode_cursor("gallery|ORG#acme#EVT#e1", {"PK": "ORG#acme#EVT#e1", "SK": "PHOTO#Z"}, b"another-secret-key")
    status, body = get(client, f"/events/acme/e1/photos?cursor={quote(forged)}")
    assert status == 400 and error_code(body) == "InvalidCursor"


def test_throttled_table_is_503_with_retry_after(client, monkeypatch):
    class Throttled:
        def query(self, **kwargs):
            raise ThrottlingException("slow down")

    monkeypatch.setattr(clients, "table", lambda: Throttled())
    response = client.http.get("/events/acme/e1/photos")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert error_code(json.loads(response.body)) == "ThrottlingException"


# --- selfie search ---------------------------------------------------------------------------


def index_people(rekognition, photos_people):
    """Index each photo's people into the event's collection, as IndexFaces would."""
    for photo, people in photos_people:
        for person in people:
            rekognition.collections.setdefault(f"{photo.org_id}-{photo.event_id}", {})[
                f"{photo.photo_id}-{person}-{len(rekognition.collections.get(f'{photo.org_id}-{photo.event_id}', {}))}"
            ] = (person, photo.photo_id)


def test_selfie_finds_each_photo_once_best_similarity_first(client, table, rekognition):
    alice_twice, alice_bob, bob = (make_photo("acme", "e1", n) for n in (1, 2, 3))
    seed(table, [(alice_twice, ()), (alice_bob, ()), (bob, ())])
    index_people(rekognition, [(alice_twice, ["alice", "alice"]), (alice_bob, ["alice", "bob"]), (bob, ["bob"])])
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30)))
    assert status == 200, body
    found = [m["photo"]["photo_id"] for m in body["matches"]]
    assert sorted(found) == sorted([alice_twice.photo_id, alice_bob.photo_id])
    assert all(m["similarity"] == 99.0 for m in body["matches"])
    assert body["faces_in_selfie"] == 1 and "note" not in body


def test_selfie_with_two_faces_searches_the_largest_and_says_so(client, table, rekognition):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    index_people(rekognition, [(photo, ["alice"])])
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((30, 30, 200)))
    assert status == 200
    assert body["faces_in_selfie"] == 2 and "largest" in body["note"]
    assert [m["photo"]["photo_id"] for m in body["matches"]] == [photo.photo_id]


def test_selfie_png_is_accepted(client, table, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30), fmt="PNG"), "image/png")
    assert status == 200 and body["matches"] == []


def test_selfie_content_type_is_not_trusted(client, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30), fmt="PNG"), "image/jpeg")
    assert status == 200
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", b"hello, I am text", "image/jpeg")
    assert status == 415 and error_code(body) == "UnsupportedImageFormat"


def test_event_without_a_collection_has_no_matches(client, rekognition):
    status, body = post_selfie(client, "/events/acme/new-event/selfie-search", selfie((200, 30, 30)))
    assert status == 200 and body["matches"] == []


def test_selfie_without_a_face_is_422(client, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((240, 240, 240)))
    assert status == 422 and error_code(body) == "NoFaceInImage"


def test_empty_selfie_is_400(client, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", b"")
    assert status == 400 and error_code(body) == "EmptyBody"


def test_truncated_selfie_is_400(client, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30))[:200])
    assert status == 400 and error_code(body) == "CorruptImage"


def test_selfie_over_the_byte_limit_is_413(client, rekognition, monkeypatch):
    settings = replace(Settings.from_env(stage_environment(STAGE)), selfie_max_bytes=1000)
    monkeypatch.setattr(clients, "settings", lambda: settings)
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30), size=(800, 800)))
    assert status == 413 and error_code(body) == "SelfieTooLarge"


def test_selfie_over_rekognitions_5_mb_is_downscaled_not_rejected(client, table, rekognition):
    seen = []
    original = rekognition.detect_faces
    rekognition.detect_faces = lambda image: seen.append(image) or original(image)
    noisy = Image.effect_noise((2000, 1600), 90).convert("RGB")
    noisy.paste((200, 30, 30), (0, 0, 200, 200))
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    assert 5 * 1024 * 1024 < len(buffer.getvalue()) < 10 * 1024 * 1024
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", buffer.getvalue(), "image/png")
    assert status == 200, body
    sent = Image.open(io.BytesIO(seen[0]))
    assert len(seen[0]) < 5 * 1024 * 1024 and max(sent.size) <= 1920 and sent.format == "JPEG"


# --- CORS ------------------------------------------------------------------------------------


def test_cors_allows_configured_origins(client):
    response = client.http.get("/events/acme/e1/photos", headers={"Origin": "https://anywhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # the dev stage allows any origin


def test_prod_does_not_allow_any_origin():
    origins = stage_environment("prod")["CORS_ALLOWED_ORIGINS"].split(",")
    assert origins and "*" not in origins


def test_selfie_preflight_is_answered(client):
    response = client.http.request(
        "OPTIONS", "/events/acme/e1/selfie-search", headers={"Origin": "https://app.example"}
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"


def test_only_listed_origins_are_echoed(client, monkeypatch):
    monkeypatch.setattr(snaprace, "_settings", replace(snaprace._settings, cors_allowed_origins=("https://app.example",)))
    allowed = client.http.get("/events/acme/e1/photos", headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Vary"] == "Origin"
    refused = client.http.get("/events/acme/e1/photos", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers
