"""The search API through the contract-checking test client, with moto DynamoDB/S3 and a Rekognition fake."""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import replace
from urllib.parse import parse_qs, quote, urlparse

import pytest
from PIL import Image

import app as snaprace
from chalicelib import clients
from chalicelib.adapters.table import PhotoTable
from chalicelib.config import AppSettings, Settings
from chalicelib.domain import imaging, keys
from chalicelib.domain.cursors import encode_cursor
from chalicelib.domain.errors import (
    InvalidImage,
    ProvisionedThroughputExceededException,
    ThrottlingException,
    UnprocessedItemsError,
)
from chalicelib.services import pipeline
from sandbox.stage import stage_environment
from tests.support.api import (
    Unavailable,
    error_code,
    get,
    index_people,
    people_in,
    post_selfie,
    selfie,
    use_settings,
    walk,
)
from tests.support.fakes import FakeRekognition
from tests.support.photos import make_photo, publish, record_failed, seed

EVENT = "/events/acme/e1"
SELFIE = f"{EVENT}/selfie-search"
UNKNOWN_PHOTO_ID = "01JTB2Y4X0ABCDEFGHJKMNPQRS"


@pytest.fixture(autouse=True)
def published(table):
    """The events these tests use exist and are published (the public sees nothing else)."""
    for event_id in ("e1", "e2", "city-10k", "new", "new-event"):
        publish(table, "acme", event_id)


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


def test_gallery_pages_follow_capture_time_not_upload_order(client, table):
    # Photographers upload in their own order; the gallery is newest capture first throughout.
    order = [7, 0, 19, 3, 12, 5, 16, 1, 9, 14, 2, 18, 6, 11, 4, 17, 8, 13, 10, 15]
    seed(table, [(make_photo("acme", "e1", n), ()) for n in order])
    pages = walk(client, f"{EVENT}/photos", 6)
    assert [len(page["photos"]) for page in pages] == [6, 6, 6, 2]
    names = [p["original_filename"] for page in pages for p in page["photos"]]
    assert names == [f"IMG_{n:05d}.jpg" for n in range(19, -1, -1)]


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
        "thumb_url": shown["url"],  # saved without a grid rendition: the full copy stands in
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
    failed_id = record_failed(table, "acme", "e1", 2)
    status, body = get(client, "/events/acme/e1/photos")
    assert [p["original_filename"] for p in body["photos"]] == ["IMG_00001.jpg"]
    status, body = get(client, f"/events/acme/e1/photos/{failed_id}")
    assert status == 200
    assert body["status"] == "FAILED"
    assert body["reason"] == {"code": "CorruptImage", "message": "JPEG is truncated"}
    assert body["original_filename"] == "broken.jpg"


def test_event_without_photos_is_an_empty_list(client):
    assert get(client, "/events/acme/new/photos") == (200, {"photos": [], "next_cursor": None})


def test_unknown_event_is_404_on_every_public_route(client, rekognition):
    base = "/events/acme/never-happened"
    for path in (
        "",
        "/photos",
        f"/photos/{UNKNOWN_PHOTO_ID}",
        "/bibs/1234/photos",
        "/photographers/p/photos",
    ):
        status, body = get(client, base + path)
        assert (status, error_code(body)) == (404, "EventNotFound"), path
    status, body = post_selfie(client, f"{base}/selfie-search", selfie((200, 30, 30)))
    assert (status, error_code(body)) == (404, "EventNotFound")
    assert rekognition.calls == []


def test_presigned_url_points_at_the_processed_copy(client, table, resources):
    photo = make_photo("acme", "e1", 1, bucket=resources.bucket)
    seed(table, [(photo, ())])
    url = urlparse(get(client, "/events/acme/e1/photos")[1]["photos"][0]["url"])
    assert url.path.endswith(f"/acme/e1/processed/{photo.photo_id}.jpg")
    assert "X-Amz-Signature" in parse_qs(url.query) and parse_qs(url.query)["X-Amz-Expires"] == ["3600"]


def test_cdn_url_when_a_cdn_is_configured(client, table, monkeypatch):
    use_settings(monkeypatch, cdn_base_url="https://cdn.example/photos")
    photo = make_photo("acme", "e1", 1)
    photo = replace(photo, grid_key=keys.grid_key("acme", "e1", photo.photo_id, "webp"))
    seed(table, [(photo, ("1234",))])
    for listing in ("photos", "bibs/1234/photos"):
        (shown,) = get(client, f"/events/acme/e1/{listing}")[1]["photos"]
        assert shown["url"] == f"https://cdn.example/photos/acme/e1/processed/{photo.photo_id}.jpg"
        assert (
            shown["thumb_url"] == f"https://cdn.example/photos/acme/e1/processed/{photo.photo_id}.grid.webp"
        )


def test_thumb_url_is_the_grid_rendition_presigned_like_url(client, table, resources):
    photo = make_photo("acme", "e1", 1, bucket=resources.bucket)
    photo = replace(photo, grid_key=keys.grid_key("acme", "e1", photo.photo_id, "webp"))
    seed(table, [(photo, ())])
    status, body = get(client, f"/events/acme/e1/photos/{photo.photo_id}")
    assert status == 200, body
    thumb = urlparse(body["thumb_url"])
    assert thumb.path.endswith(f"/acme/e1/processed/{photo.photo_id}.grid.webp")
    assert parse_qs(thumb.query)["X-Amz-Expires"] == ["3600"]


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
    event = {
        "bucket": resources.bucket,
        "key": photo["raw_key"],
        "version_id": None,
        "etag": "e",
        "size": 1,
        "uploaded_at": "2025-05-04T09:00:00Z",
        "photo": photo,
        "analysis": {
            "text": {"bibs": ["1234", "1234"], "error": None},
            "faces": {"face_ids": [], "error": None},
        },
    }
    pipeline.fanout(event, table=table, rekognition=FakeRekognition())
    status, body = get(client, "/events/acme/e1/bibs/1234/photos")
    assert status == 200 and [p["photo_id"] for p in body["photos"]] == [photo["photo_id"]]


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


def test_two_orgs_sharing_an_event_id_never_see_each_others_photos_on_any_route(client, table, rekognition):
    mine = make_photo("org-a", "marathon", 1, photographer="p")
    theirs = make_photo("org-b", "marathon", 2, photographer="p")
    seed(table, [(mine, ("1234",)), (theirs, ("1234",))])
    index_people(rekognition, [(mine, ["alice"]), (theirs, ["alice"])])
    for org, own, other in (("org-a", mine, theirs), ("org-b", theirs, mine)):
        event = f"/events/{org}/marathon"
        for path in (f"{event}/photos", f"{event}/bibs/1234/photos", f"{event}/photographers/p/photos"):
            status, body = get(client, path)
            assert status == 200 and [p["photo_id"] for p in body["photos"]] == [own.photo_id], path
        assert get(client, f"{event}/photos/{own.photo_id}")[0] == 200
        status, body = get(client, f"{event}/photos/{other.photo_id}")
        assert status == 404 and error_code(body) == "PhotoNotFound"
        status, body = post_selfie(client, f"{event}/selfie-search", selfie((200, 30, 30)))
        assert status == 200 and [m["photo"]["photo_id"] for m in body["matches"]] == [own.photo_id]
        status, body = get(client, event)
        assert status == 200 and body["photo_count"] == 1


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
    seed(
        table,
        [
            (make_photo("acme", "run-5k", 1, photographer="p"), ()),
            (make_photo("acme", "run-5k-2025", 2, photographer="p"), ()),
        ],
    )
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


@pytest.mark.parametrize(
    "path", ["/events/bad%23org/e1/photos", "/events/acme/-e1/photos", f"/events/acme/{'x' * 65}/photos"]
)
def test_malformed_ids_are_400(client, path):
    status, body = get(client, path)
    assert status == 400 and error_code(body) == "InvalidId"


def test_cursor_that_is_not_ours_is_400(client, table):
    for cursor in ["", "garbage", "a.b", "%E2%9C%93.x", "eyJzIjoiZ2FsbGVyeSJ9." + "A" * 43]:
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


def test_cursor_signed_with_another_secret_is_400(client, table):
    seed(table, [(make_photo("acme", "e1", n), ()) for n in range(3)])
    issued = get(client, "/events/acme/e1/photos?limit=1")[1]["next_cursor"]
    payload = json.loads(base64.urlsafe_b64decode(issued.split(".")[0] + "=="))
    forged = encode_cursor(payload["s"], payload["k"], b"another-secret-key")
    status, body = get(client, f"/events/acme/e1/photos?cursor={quote(forged)}")
    assert status == 400 and error_code(body) == "InvalidCursor"


# --- selfie search ---------------------------------------------------------------------------


def test_selfie_finds_each_photo_once_best_similarity_first(client, table, rekognition):
    alice_twice, alice_bob, bob = (make_photo("acme", "e1", n) for n in (1, 2, 3))
    seed(table, [(alice_twice, ()), (alice_bob, ()), (bob, ())])
    index_people(
        rekognition, [(alice_twice, ["alice", "alice"]), (alice_bob, ["alice", "bob"]), (bob, ["bob"])]
    )
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30)))
    assert status == 200, body
    found = [m["photo"]["photo_id"] for m in body["matches"]]
    assert sorted(found) == sorted([alice_twice.photo_id, alice_bob.photo_id])
    assert all(m["similarity"] == 99.0 for m in body["matches"])
    assert set(body["searched_face"]) == {"left", "top", "width", "height"}


def test_selfie_matches_are_ranked_by_each_photos_best_similarity(client, table, monkeypatch):
    first, second, third, unlike = (make_photo("acme", "e1", n) for n in (1, 2, 3, 4))
    seed(table, [(photo, ()) for photo in (first, second, third, unlike)])
    scores = {
        first.photo_id: [92.0, 88.0],
        second.photo_id: [97.5],
        third.photo_id: [86.25],
        unlike.photo_id: [60.0],
    }
    similarity: dict[str, float] = {}
    fake = FakeRekognition(people=people_in, similarity=similarity.__getitem__)
    monkeypatch.setattr(clients, "rekognition", lambda attempts=4: fake)
    index_people(
        fake, [(first, ["alice", "alice"]), (second, ["alice"]), (third, ["alice"]), (unlike, ["alice"])]
    )
    # The service answers in no particular order; here in indexing order, which is not the ranking.
    for face_id, (_, photo_id) in fake.collections[("acme", "e1")].items():
        similarity[face_id] = scores[photo_id].pop(0)

    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30)))

    assert status == 200, body
    ranked = [(m["photo"]["photo_id"], m["similarity"]) for m in body["matches"]]
    assert ranked == [(second.photo_id, 97.5), (first.photo_id, 92.0), (third.photo_id, 86.25)]


def test_selfie_search_is_one_rekognition_call(client, table, rekognition):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    index_people(rekognition, [(photo, ["alice"])])
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((30, 30, 200)))
    assert status == 200 and [m["photo"]["photo_id"] for m in body["matches"]] == [photo.photo_id]
    assert rekognition.calls == ["search_faces_by_image"]


def test_selfie_without_consent_is_400_before_any_rekognition_call(client, table, rekognition):
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    for query in ("", "?consent=false", "?consent=yes", "?consent="):
        response = client.http.post(
            f"{SELFIE}{query}", headers={"Content-Type": "image/jpeg"}, body=selfie((200, 30, 30))
        )
        assert response.status_code == 400, query
        assert error_code(json.loads(response.body)) == "ConsentRequired"
    assert rekognition.calls == []


@pytest.mark.parametrize("event", ["unknown-event", "draft", "bib-only"])
def test_selfie_for_an_unknown_unpublished_or_bib_only_event_costs_no_rekognition_call(
    client, table, rekognition, event
):
    publish(table, "acme", "draft", published=False)
    publish(table, "acme", "bib-only", faces_enabled=False)
    status, body = post_selfie(client, f"/events/acme/{event}/selfie-search", selfie((200, 30, 30)))
    assert status in (404, 409), body
    assert rekognition.calls == []


def test_selfie_max_bytes_fits_lambdas_6_mb_payload_after_base64():
    for stage in ("dev", "prod", "local"):
        limit = Settings.from_env(stage_environment(stage)).selfie_max_bytes
        encoded = 4 * math.ceil(limit / 3)
        # What is left of Lambda's 6 MB (6,291,456 bytes) holds the rest of the API Gateway event.
        assert encoded + 64 * 1024 <= 6 * 1024 * 1024, stage


def test_selfie_png_is_accepted(client, table, rekognition):
    status, body = post_selfie(
        client, "/events/acme/e1/selfie-search", selfie((200, 30, 30), fmt="PNG"), "image/png"
    )
    assert status == 200 and body["matches"] == []


def test_selfie_content_type_is_not_trusted(client, rekognition):
    status, body = post_selfie(
        client, "/events/acme/e1/selfie-search", selfie((200, 30, 30), fmt="PNG"), "image/jpeg"
    )
    assert status == 200
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", b"hello, I am text", "image/jpeg")
    assert status == 415 and error_code(body) == "UnsupportedImageFormat"


def test_event_without_a_collection_has_no_matches(client, rekognition):
    status, body = post_selfie(client, "/events/acme/new-event/selfie-search", selfie((200, 30, 30)))
    assert status == 200 and body["matches"] == []


def test_selfie_without_a_face_is_422(client, rekognition):
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((240, 240, 240)))
    assert status == 422 and error_code(body) == "NoFaceInImage"


def test_empty_selfie_is_400(client, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", b"")
    assert status == 400 and error_code(body) == "EmptyBody"


def test_truncated_selfie_is_400(client, rekognition):
    status, body = post_selfie(client, "/events/acme/e1/selfie-search", selfie((200, 30, 30))[:200])
    assert status == 400 and error_code(body) == "CorruptImage"


def test_selfie_over_the_byte_limit_is_413(client, rekognition, monkeypatch):
    use_settings(monkeypatch, selfie_max_bytes=1000)
    status, body = post_selfie(
        client, "/events/acme/e1/selfie-search", selfie((200, 30, 30), size=(800, 800))
    )
    assert status == 413 and error_code(body) == "SelfieTooLarge"


def test_selfie_over_rekognitions_5_mb_is_downscaled_not_rejected(client, table, rekognition, monkeypatch):
    use_settings(monkeypatch, selfie_max_bytes=10 * 1024 * 1024)
    seen = []
    original = rekognition.search_faces_by_image
    rekognition.search_faces_by_image = lambda org, event, image, **kw: (
        seen.append(image) or original(org, event, image, **kw)
    )
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
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


def test_selfie_preflight_for_a_malformed_event_is_400_like_the_post(client):
    response = client.http.options(
        "/events/acme/bad%23event/selfie-search", headers={"Origin": "https://app.example"}
    )
    assert response.status_code == 400 and error_code(json.loads(response.body)) == "InvalidId"
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # the browser may still read the error


def test_only_listed_origins_are_echoed(client, monkeypatch):
    monkeypatch.setattr(
        snaprace, "_settings", replace(snaprace._settings, cors_allowed_origins=("https://app.example",))
    )
    allowed = client.http.get("/events/acme/e1/photos", headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Vary"] == "Origin"
    refused = client.http.get("/events/acme/e1/photos", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


PROD_ORIGIN = "https://snaprace.example"


@pytest.fixture
def prod_cors(monkeypatch):
    """The prod stage's CORS configuration (one listed origin) on the dev stage's app."""
    prod = AppSettings.from_env(stage_environment("prod"))
    assert prod.cors_allowed_origins == (PROD_ORIGIN,)
    monkeypatch.setattr(
        snaprace, "_settings", replace(snaprace._settings, cors_allowed_origins=prod.cors_allowed_origins)
    )


def _cors_headers(response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.startswith("Access-Control-") or name == "Vary"
    }


@pytest.mark.parametrize(
    "origin",
    [
        "https://snaprace.example.evil",  # the allowed origin as a prefix
        "https://evilsnaprace.example",  # as a suffix
        "https://snaprace.exampl",  # a prefix of it
        "https://www.snaprace.example",  # a subdomain
        "http://snaprace.example",  # another scheme
        "https://snaprace.example:8443",  # another port
        "https://SNAPRACE.example.",  # case and a trailing dot
        "null",
    ],
)
def test_look_alike_origins_get_no_cors_headers(client, prod_cors, origin):
    for method in ("GET", "OPTIONS"):
        path = f"{EVENT}/photos" if method == "GET" else SELFIE
        response = client.http.request(method, path, headers={"Origin": origin})
        assert _cors_headers(response) == {}, (method, response.headers)


def test_errors_carry_the_same_cors_headers_as_successes(client, table, rekognition, prod_cors, monkeypatch):
    origin = {"Origin": PROD_ORIGIN}
    use_settings(monkeypatch, selfie_max_bytes=100)
    ok = client.http.get(f"{EVENT}/photos", headers=origin)
    assert ok.status_code == 200
    expected = _cors_headers(ok)
    assert expected["Access-Control-Allow-Origin"] == PROD_ORIGIN and expected["Vary"] == "Origin"
    answers = {
        404: client.http.get("/events/acme/unknown/photos", headers=origin),
        400: client.http.get(f"{EVENT}/bibs/12/photos", headers=origin),
        413: client.http.post(
            f"{SELFIE}?consent=true", headers={**origin, "Content-Type": "image/jpeg"}, body=b"x" * 101
        ),
    }
    monkeypatch.setattr(clients, "table", lambda: Unavailable(ThrottlingException("slow")))
    answers[503] = client.http.get(f"{EVENT}/photos", headers=origin)
    monkeypatch.setattr(clients, "table", lambda: Unavailable(RuntimeError("boom")))
    answers[500] = client.http.get(f"{EVENT}/photos", headers=origin)
    for status, response in answers.items():
        assert response.status_code == status, response.body
        assert _cors_headers(response) == expected, status


def test_preflight_under_the_prod_config_answers_only_the_listed_origin(client, prod_cors):
    allowed = client.http.options(
        SELFIE, headers={"Origin": PROD_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == PROD_ORIGIN
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"].split(",")
    assert "Content-Type" in allowed.headers["Access-Control-Allow-Headers"]
    assert allowed.headers["Vary"] == "Origin"
    refused = client.http.options(
        SELFIE, headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    )
    assert _cors_headers(refused) == {}


# --- shapes, errors and failures on every operation ------------------------------------------


def test_photo_without_bibs_or_photographer_has_empty_bibs_and_null_photographer(client, table):
    seed(table, [(make_photo("acme", "e1", 1), ())])
    status, body = get(client, f"{EVENT}/photos")
    (photo,) = body["photos"]
    assert status == 200 and photo["bibs"] == [] and photo["photographer"] is None


BAD_REQUESTS = [
    ("/events/bad%23org/e1/photos", "InvalidId"),
    (f"/events/acme/{'x' * 65}/photos", "InvalidId"),
    (f"{EVENT}/photos/not-a-ulid", "InvalidId"),
    ("/events/-acme/e1/photos/" + UNKNOWN_PHOTO_ID, "InvalidId"),
    ("/events/acme/e%201/bibs/1234/photos", "InvalidId"),
    ("/events/acme/.e1/photographers/p/photos", "InvalidId"),
    (f"{EVENT}/bibs/12/photos", "InvalidBib"),
    (f"{EVENT}/bibs/0000/photos", "InvalidBib"),
    (f"{EVENT}/photographers/%40/photos", "InvalidHandle"),
    (f"{EVENT}/photographers/a%23b/photos", "InvalidHandle"),
    (f"{EVENT}/photos?limit=0", "InvalidLimit"),
    (f"{EVENT}/photos?limit=ten", "InvalidLimit"),
    (f"{EVENT}/bibs/1234/photos?limit=101", "InvalidLimit"),
    (f"{EVENT}/photographers/p/photos?limit=-1", "InvalidLimit"),
    (f"{EVENT}/photos?cursor=garbage", "InvalidCursor"),
    (f"{EVENT}/bibs/1234/photos?cursor=a.b", "InvalidCursor"),
    (f"{EVENT}/photographers/p/photos?cursor=a.b", "InvalidCursor"),
]


def test_each_listing_names_what_is_wrong_with_a_bad_request(client):
    answers = [(url, *get(client, url)) for url, _ in BAD_REQUESTS]
    assert [(url, status, error_code(body)) for url, status, body in answers] == [
        (url, 400, code) for url, code in BAD_REQUESTS
    ]


@pytest.mark.parametrize("content_type", ["image/webp", "application/octet-stream"])
def test_selfie_for_an_event_without_faces_has_no_matches(client, rekognition, content_type):
    image = selfie((200, 30, 30), fmt="PNG")
    status, body = post_selfie(client, "/events/acme/new/selfie-search", image, content_type)
    assert status == 200 and body["matches"] == []


def test_selfie_for_a_malformed_event_is_400(client, rekognition):
    status, body = post_selfie(client, "/events/acme/bad%23event/selfie-search", selfie((200, 30, 30)))
    assert status == 400 and error_code(body) == "InvalidId"
    assert rekognition.calls == []


def test_selfie_over_the_pixel_limit_is_413(client, rekognition, monkeypatch):
    use_settings(monkeypatch, selfie_max_pixels=10_000)
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30), size=(400, 400)))
    assert status == 413 and error_code(body) == "ImageTooLarge"
    assert rekognition.calls == []


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP", "TIFF"])
def test_selfie_pixel_limit_is_read_from_the_header_before_decoding(client, rekognition, monkeypatch, fmt):
    # Selfies have their own, lower limit than uploads; a bomb is refused before its pixels exist.
    use_settings(monkeypatch, selfie_max_pixels=100 * 100, max_image_pixels=10**9)
    decoded = []
    monkeypatch.setattr(imaging, "_load", lambda image, name: decoded.append(name))
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30), size=(101, 100), fmt=fmt), "image/png")
    assert status == 413 and error_code(body) == "ImageTooLarge"
    assert decoded == [] and rekognition.calls == []


EVERY_OPERATION = [
    ("GET", f"{EVENT}/photos"),
    ("GET", f"{EVENT}/photos/{UNKNOWN_PHOTO_ID}"),
    ("GET", f"{EVENT}/bibs/1234/photos"),
    ("GET", f"{EVENT}/photographers/p/photos"),
    ("POST", SELFIE),
]


def _request(client, method, url):
    if method == "POST":
        return post_selfie(client, url, selfie((200, 30, 30)))
    return get(client, url)


@pytest.mark.parametrize("error", [ThrottlingException("slow"), ProvisionedThroughputExceededException("no")])
def test_throttled_table_is_503_with_retry_after_on_every_operation(client, rekognition, monkeypatch, error):
    # The selfie only reads the table once Rekognition found matches.
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    monkeypatch.setattr(clients, "table", lambda: Unavailable(error))
    for method, url in EVERY_OPERATION:
        selfie_post = {"headers": {"Content-Type": "image/jpeg"}, "body": selfie((200, 30, 30))}
        response = client.http.request(method, url, **(selfie_post if method == "POST" else {}))
        assert response.status_code == 503 and response.headers["Retry-After"] == "1", (method, url)
        assert error_code(json.loads(response.body)) == type(error).__name__


def test_throttled_rekognition_is_503(client, rekognition):
    rekognition.fail("search_faces_by_image", ThrottlingException("Rekognition throttled the call"))
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30)))
    assert status == 503 and error_code(body) == "ThrottlingException"


def test_unprocessed_photo_lookups_are_503(client, table, rekognition, monkeypatch):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    index_people(rekognition, [(photo, ["alice"])])

    def unprocessed(self, org_id, event_id, photo_ids):
        raise UnprocessedItemsError("BatchGetItem left keys unprocessed after every attempt")

    monkeypatch.setattr(PhotoTable, "photos", unprocessed)
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30)))
    assert status == 503 and error_code(body) == "UnprocessedItemsError"


def test_unexpected_failure_is_500_without_its_details_on_every_operation(client, rekognition, monkeypatch):
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    monkeypatch.setattr(clients, "table", lambda: Unavailable(RuntimeError("boom")))
    for method, url in EVERY_OPERATION:
        status, body = _request(client, method, url)
        assert status == 500 and error_code(body) == "InternalError", (method, url)
        assert "boom" not in body["error"]["message"]


def test_selfie_rekognition_rejects_is_a_4xx(client, rekognition):
    rejected = InvalidImage("Rekognition rejected the image (InvalidImageFormatException): bad")
    rekognition.fail("search_faces_by_image", rejected)
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30)))
    assert 400 <= status < 500, body


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_unlisted_selfie_content_type_gets_the_api_error_shape(client, rekognition, content_type):
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30)), content_type)
    assert status == 415 and error_code(body) == "UnsupportedMediaType"


def test_gif_selfie_is_decoded(client, rekognition):
    status, body = post_selfie(client, SELFIE, selfie((200, 30, 30), fmt="GIF"), "image/gif")
    assert status == 200, body
