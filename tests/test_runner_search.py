"""Every photo of a runner: face matches in bib search, "did you mean", start lists and names.

Photos go through the pipeline's own DetectText, IndexFaces and Fanout steps (with the in-memory
Rekognition, told where each face and bib is), then are searched through the HTTP API.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import clients
from chalicelib.domain.bibs import TextBox, TextDetection
from chalicelib.domain.errors import ThrottlingException
from chalicelib.domain.model import FaceBox
from chalicelib.services import pipeline, runners
from tests.support.api import error_code, get
from tests.support.organisers import bearer
from tests.support.photos import make_photo, publish

ALICE, BOB, CAROL = "alice", "bob", "carol"


def face_at(person: str, left: float) -> tuple[str, FaceBox]:
    return person, FaceBox(left, 0.1, 0.1, 0.1, 99.0)


def bib_at(number: str, left: float) -> TextDetection:
    return TextDetection(number, 99.0, "WORD", TextBox(left, 0.45, 0.1, 0.05))


class Scene:
    """What each photo shows: faces with boxes, and bib text with boxes."""

    def __init__(self, rekognition):
        self.faces: dict[str, list] = {}
        self.text: dict[str, list] = {}
        rekognition._faces = lambda bucket, key: self.faces.get(key, [])
        rekognition._text = lambda bucket, key: self.text.get(key, [])
        self.rekognition = rekognition

    def ingest(self, table, bucket, n, faces, text=()):
        photo = make_photo("acme", "e1", n, bucket=bucket).to_dict()
        self.faces[photo["processed_key"]] = list(faces)
        self.text[photo["processed_key"]] = list(text)
        settings = clients.settings()
        analysis = {
            "text": pipeline.detect_text(
                {"photo": photo}, rekognition=self.rekognition, table=table, settings=settings
            ),
            "faces": pipeline.index_faces(
                {"photo": photo}, rekognition=self.rekognition, table=table, settings=settings
            ),
        }
        event = {
            "bucket": bucket,
            "key": photo["raw_key"],
            "version_id": None,
            "etag": f"e{n}",
            "size": 1,
            "uploaded_at": photo["uploaded_at"],
            "photo": photo,
            "analysis": analysis,
        }
        pipeline.fanout(event, table=table, rekognition=self.rekognition)
        return photo["photo_id"]


@pytest.fixture
def scene(rekognition):
    # Alice and Bob look alike to the engine (93: above the link threshold of 90), as runners who
    # run together sometimes do; the margin over the neighbour in Alice's own photo tells them apart.
    likeness = {frozenset({ALICE, BOB}): 93.0}
    rekognition._likeness = lambda a, b: 99.0 if a == b else likeness.get(frozenset({a, b}), 0.0)
    return Scene(rekognition)


def matches(body):
    return [(photo["photo_id"], photo["match"]) for photo in body["photos"]]


def test_a_bib_search_adds_the_runners_face_photos_after_the_bib_photos(client, table, resources, scene):
    publish(table, "acme", "e1")
    together = scene.ingest(
        table,
        resources.bucket,
        1,
        [face_at(ALICE, 0.1), face_at(BOB, 0.6), face_at(CAROL, 0.85)],
        [bib_at("101", 0.1), bib_at("202", 0.6)],
    )
    bob_alone = scene.ingest(table, resources.bucket, 2, [face_at(BOB, 0.4)])
    alice_alone = scene.ingest(table, resources.bucket, 3, [face_at(ALICE, 0.4)])
    alice_again = scene.ingest(table, resources.bucket, 4, [face_at(ALICE, 0.2)], [bib_at("101", 0.2)])
    assert table.photo("acme", "e1", together)["links"].keys() == {"101", "202"}  # Carol wears no bib

    status, body = get(client, "/events/acme/e1/bibs/101/photos")
    assert status == 200, body
    assert matches(body) == [(alice_again, "bib"), (together, "bib"), (alice_alone, "face")]
    # Bob, alone and without a readable bib, is 93 like Alice: never on Alice's bib.
    assert bob_alone not in [photo_id for photo_id, _ in matches(body)]
    status, body = get(client, "/events/acme/e1/bibs/202/photos")
    assert matches(body) == [(together, "bib"), (bob_alone, "face")]
    assert "suggestions" not in body


def test_face_matches_come_on_the_last_page_only(client, table, resources, scene):
    publish(table, "acme", "e1")
    scene.ingest(table, resources.bucket, 1, [face_at(ALICE, 0.1)], [bib_at("101", 0.1)])
    scene.ingest(table, resources.bucket, 2, [face_at(ALICE, 0.1)], [bib_at("101", 0.1)])
    alone = scene.ingest(table, resources.bucket, 3, [face_at(ALICE, 0.4)])
    first = get(client, "/events/acme/e1/bibs/101/photos?limit=1")[1]
    assert [p["match"] for p in first["photos"]] == ["bib"] and first["next_cursor"]
    assert "search_faces" not in scene.rekognition.calls
    cursor = first["next_cursor"]
    last = get(client, f"/events/acme/e1/bibs/101/photos?limit=1&cursor={cursor}")[1]
    assert matches(last)[-1] == (alone, "face") and last["next_cursor"] is None


def test_a_bib_only_event_searches_no_faces(client, table, resources, scene):
    publish(table, "acme", "e1", faces_enabled=False)
    scene.ingest(table, resources.bucket, 1, [], [bib_at("101", 0.1)])
    assert [p["match"] for p in get(client, "/events/acme/e1/bibs/101/photos")[1]["photos"]] == ["bib"]
    assert "search_faces" not in scene.rekognition.calls


def test_an_empty_bib_search_suggests_close_bibs_with_their_photo_counts(client, table, resources, scene):
    publish(table, "acme", "e1")
    for n, number in enumerate(["1234", "1234", "1235", "1284", "9999"], start=1):
        scene.ingest(table, resources.bucket, n, [], [bib_at(number, 0.1)])
    status, body = get(client, "/events/acme/e1/bibs/1236/photos")
    assert status == 200, body
    assert body["photos"] == [] and body["suggestions"] == [
        {"bib": "1234", "photo_count": 2},
        {"bib": "1235", "photo_count": 1},
    ]
    assert "suggestions" not in get(client, "/events/acme/e1/bibs/1234/photos")[1]


def test_bib_counts_follow_reprocessing_and_deletion(table, resources, scene):
    publish(table, "acme", "e1")
    first = scene.ingest(table, resources.bucket, 1, [], [bib_at("1234", 0.1)])
    scene.ingest(table, resources.bucket, 2, [], [bib_at("1234", 0.1)])
    scene.ingest(table, resources.bucket, 1, [], [bib_at("1234", 0.1)])  # a retried run counts once
    assert table.bib_counts("acme", "e1") == {"1234": 2}
    table.delete_photo("acme", "e1", first)
    assert table.bib_counts("acme", "e1") == {"1234": 1}


def test_an_events_short_bibs_and_kept_prefixes_are_searchable(client, table, resources, scene):
    publish(table, "acme", "e1", bib_pattern="[A-Za-z]?[0-9]{1,6}", bib_strip_prefix=False)
    photo_id = scene.ingest(table, resources.bucket, 1, [], [bib_at("42", 0.1), bib_at("A12", 0.5)])
    for typed, bib in (("42", "42"), ("a12", "A12")):
        status, body = get(client, f"/events/acme/e1/bibs/{typed}/photos")
        assert status == 200 and body["bib"] == bib and matches(body) == [(photo_id, "bib")]
    publish(table, "acme", "e2")
    assert error_code(get(client, "/events/acme/e2/bibs/42/photos")[1]) == "InvalidBib"


# --- start lists -------------------------------------------------------------------------------

START_LIST = "bib,name,category\n10264,Ada Lovelace,F40\n311,Alan Turing,M35\n10265,Grace Hopper,\n"


def put_start_list(client, table, body, org="acme", headers=None):
    headers = headers if headers is not None else bearer(table, "acme")
    response = client.http.put(
        f"/orgs/{org}/events/e1/start-list", headers={**headers, "Content-Type": "text/csv"}, body=body
    )
    return response.status_code, json.loads(response.body) if response.body else None


def test_a_start_list_drops_unlisted_reads_and_corrects_unique_near_misses(client, table, resources, scene):
    publish(table, "acme", "e1")
    status, body = put_start_list(client, table, START_LIST.encode())
    assert status == 200 and body == {"runners": 3}
    photo_id = scene.ingest(
        table,
        resources.bucket,
        1,
        [],
        [bib_at("811", 0.1), bib_at("999", 0.4), bib_at("1026", 0.7), bib_at("1264", 0.9)],
    )
    record = table.photo("acme", "e1", photo_id)
    # 811 -> 311 (one misread digit, unique); 1026 is one edit from both 10264 and 10265: not guessed.
    assert record["bibs"] == ["311", "10264"]
    assert record["unlisted_bibs"] == ["999", "1026"]
    assert record["corrections"] == [{"read": "811", "bib": "311"}, {"read": "1264", "bib": "10264"}]
    assert matches(get(client, "/events/acme/e1/bibs/311/photos")[1]) == [(photo_id, "bib")]
    assert get(client, "/events/acme/e1/bibs/999/photos")[1]["photos"] == []


def test_searching_a_runners_name_finds_their_bib(client, table, resources, scene):
    publish(table, "acme", "e1")
    put_start_list(client, table, START_LIST.encode())
    scene.ingest(table, resources.bucket, 1, [], [bib_at("311", 0.1)])
    status, body = get(client, "/events/acme/e1/runners?name=alan%20tur")
    assert status == 200, body
    assert body == {
        "name": "alan tur",
        "runners": [{"bib": "311", "name": "Alan Turing", "category": "M35", "photo_count": 1}],
    }
    assert get(client, "/events/acme/e1/runners?name=nobody")[1]["runners"] == []
    publish(table, "acme", "e2")
    assert get(client, "/events/acme/e2/runners?name=ada")[1]["runners"] == []  # no start list


@pytest.mark.parametrize(
    "path", ["/events/acme/e1/runners", "/events/acme/e1/runners?name=%20", "/events/-x/e1/runners?name=a"]
)
def test_a_name_search_without_a_name_is_400(client, table, path):
    publish(table, "acme", "e1")
    status, body = get(client, path)
    assert status == 400 and error_code(body) in ("InvalidName", "InvalidId")


def test_a_name_search_in_an_unpublished_event_is_404(client, table):
    publish(table, "acme", "e1", published=False)
    status, body = get(client, "/events/acme/e1/runners?name=ada")
    assert status == 404 and error_code(body) == "EventNotFound"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"10264\n", "InvalidStartList"),
        (b"\xff\xfe,x\n", "InvalidStartList"),
        (b"12,Ada\n", "InvalidStartList"),
    ],
)
def test_a_malformed_start_list_is_400(client, table, body, code):
    publish(table, "acme", "e1")
    status, answer = put_start_list(client, table, body)
    assert status == 400 and error_code(answer) == code


def test_a_start_list_sent_as_json_is_415(client, table):
    publish(table, "acme", "e1")
    response = client.http.put(
        "/orgs/acme/events/e1/start-list",
        headers={**bearer(table, "acme"), "Content-Type": "application/json"},
        body=b'{"bib": "1"}',
    )
    assert response.status_code == 415 and error_code(json.loads(response.body)) == "UnsupportedMediaType"


def test_start_list_needs_the_events_organiser_and_the_event(client, table):
    publish(table, "acme", "e1")
    assert put_start_list(client, table, START_LIST.encode(), headers={})[0] == 401
    other = bearer(table, "other")
    assert put_start_list(client, table, START_LIST.encode(), headers=other)[0] == 403
    response = client.http.put(
        "/orgs/acme/events/never/start-list",
        headers={**bearer(table, "acme"), "Content-Type": "text/csv"},
        body=START_LIST.encode(),
    )
    assert response.status_code == 404 and error_code(json.loads(response.body)) == "EventNotFound"
    response = client.http.put(
        "/orgs/acme/events/-bad/start-list",
        headers={**bearer(table, "acme"), "Content-Type": "text/csv"},
        body=START_LIST.encode(),
    )
    assert response.status_code == 400 and error_code(json.loads(response.body)) == "InvalidId"


@pytest.mark.parametrize(
    ("method", "path", "function"),
    [
        ("PUT", "/orgs/acme/events/e1/start-list", "put_start_list"),
        ("GET", "/events/acme/e1/runners?name=a", "runners_named"),
    ],
)
def test_runner_routes_answer_503_and_500_as_documented(client, table, monkeypatch, method, path, function):
    publish(table, "acme", "e1")
    headers = {**bearer(table, "acme"), "Content-Type": "text/csv"} if method == "PUT" else {}

    def throttled(*args, **kwargs):
        raise ThrottlingException("DynamoDB throttled the read")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    for replacement, status, code in (
        (throttled, 503, "ThrottlingException"),
        (broken, 500, "InternalError"),
    ):
        monkeypatch.setattr(runners, function, replacement)
        response = client.http.request(
            method, path, headers=headers, body=START_LIST.encode() if method == "PUT" else b""
        )
        assert response.status_code == status and error_code(json.loads(response.body)) == code
