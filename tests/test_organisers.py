"""Organisers and photographers: tokens, events, uploads and their status, failures, reprocess,
delete and retention, through the contract-checking test client (moto, the Rekognition fake, and
the real statemachine.json where a test runs the pipeline)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, date, datetime

import boto3
import pytest

import app as snaprace
from chalicelib import clients
from chalicelib.domain import ids, keys
from chalicelib.domain.bibs import TextDetection
from chalicelib.domain.model import Analysis
from chalicelib.services import auth, organiser, pipeline
from sandbox.lambdas import LocalLambdas
from scripts import redrive
from tests.support.api import error_code, get, index_people, post_selfie, selfie
from tests.support.aws import STAGE
from tests.support.organisers import bearer
from tests.support.photos import make_photo, publish, record_failed, seed
from tests.support.workflow import drain_queue, items_by_type, jpeg_bytes, wait_for_executions

ORG = "/orgs/acme/events/e1"
PUBLIC = "/events/acme/e1"
SETTINGS = {"name": "City 10K", "date": "2025-05-04", "published": True}


def call(client, method, path, headers=None, body=None):
    """Send a request (JSON body if given); return (status, JSON body or None)."""
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body).encode()
    response = client.http.request(method, path, headers=headers, body=body or b"")
    return response.status_code, json.loads(response.body) if response.body else None


@pytest.fixture
def acme(table):
    """The Authorization header of a live token for organisation acme."""
    return bearer(table, "acme")


@pytest.fixture
def lambdas():
    """Lambda invocations (the pipeline's steps and the jobs worker) run in this process."""
    with LocalLambdas(snaprace.app, STAGE, retry_sleep_scale=0).installed() as dispatcher:
        yield dispatcher


def every_organiser_route(photo_id="01JTB2Y4X0ABCDEFGHJKMNPQRS", upload_id="01JTB2Y4X0ABCDEFGHJKMNPQRS"):
    return [
        ("PUT", ORG, SETTINGS),
        ("GET", ORG, None),
        ("DELETE", ORG, None),
        (
            "POST",
            f"{ORG}/uploads",
            {"files": [{"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}]},
        ),
        ("GET", f"{ORG}/uploads/{upload_id}", None),
        ("GET", f"{ORG}/failures", None),
        ("POST", f"{ORG}/reprocess", {"failed": True}),
        ("DELETE", f"{ORG}/photos/{photo_id}", None),
    ]


# --- tokens ----------------------------------------------------------------------------------


def test_every_organiser_route_without_a_token_is_401(client):
    for method, path, body in every_organiser_route():
        status, answer = call(client, method, path, body=body)
        assert (status, error_code(answer)) == (401, "MissingToken"), (method, path)


def test_a_token_this_deployment_never_issued_is_401(client):
    for header in ("Bearer snr_made-up", "Bearer not-even-ours", "Basic YWNtZTpzZWNyZXQ="):
        status, answer = call(client, "GET", ORG, headers={"Authorization": header})
        assert status == 401 and error_code(answer) in ("InvalidToken", "MissingToken"), header


def test_another_organisations_token_is_403_on_every_organiser_route(client, table):
    publish(table, "acme", "e1")
    other = bearer(table, "other")
    for method, path, body in every_organiser_route():
        status, answer = call(client, method, path, headers=other, body=body)
        assert (status, error_code(answer)) == (403, "WrongOrganisation"), (method, path)
    assert table.event("acme", "e1")["status"] == "ACTIVE"  # nothing was done for the wrong org


def test_a_revoked_token_is_403(client, table):
    token, listing = auth.create_token("acme", label="finish line", table=table, now="2025-05-01T09:00:00Z")
    headers = {"Authorization": f"Bearer {token}"}
    publish(table, "acme", "e1")
    assert call(client, "GET", ORG, headers=headers)[0] == 200
    assert auth.revoke_token("acme", listing["token_id"], table=table, now="2025-05-02T09:00:00Z")
    status, answer = call(client, "GET", ORG, headers=headers)
    assert (status, error_code(answer)) == (403, "TokenRevoked")
    assert auth.list_tokens("acme", table=table)[0]["revoked_at"] == "2025-05-02T09:00:00Z"


def test_tokens_are_stored_only_as_hashes(table):
    token, _ = auth.create_token("acme", label=None, table=table, now="2025-05-01T09:00:00Z")
    stored = json.dumps(boto3.client("dynamodb").scan(TableName=table.name)["Items"])
    assert token not in stored and token[4:] not in stored
    assert auth.token_hash(token) in stored


# --- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"name": "X", "date": "2025-13-01"}, "date"),
        ({"name": "", "date": "2025-05-04"}, "name"),
        ({"name": "X", "date": "2025-05-04", "colour": "red"}, "colour"),
        ({"name": "X", "date": "2025-05-04", "retention_days": -1}, "retention_days"),
        ({"name": "X", "date": "2025-05-04", "published": "yes"}, "published"),
        ({"name": "X", "date": "2025-05-04", "bib_rules": {"pattern": "[0-9"}}, "pattern"),
    ],
)
def test_event_settings_are_checked_and_the_error_names_the_field(client, acme, settings, named):
    status, answer = call(client, "PUT", ORG, headers=acme, body=settings)
    assert (status, error_code(answer)) == (400, "InvalidEventSettings")
    assert named in answer["error"]["message"]


def test_an_event_is_created_updated_and_read_back_by_its_organiser(client, acme):
    status, created = call(client, "PUT", ORG, headers=acme, body={**SETTINGS, "published": False})
    assert status == 200 and created["published"] is False and created["status"] == "ACTIVE"
    changed = {
        **SETTINGS,
        "faces_enabled": False,
        "retention_days": 30,
        "bib_rules": {"pattern": "[0-9]{1,6}"},
    }
    status, updated = call(client, "PUT", ORG, headers=acme, body=changed)
    assert status == 200
    assert (updated["faces_enabled"], updated["retention_days"]) == (False, 30)
    assert updated["bib_rules"] == {"pattern": "[0-9]{1,6}"}
    assert updated["created_at"] == created["created_at"]
    assert call(client, "GET", ORG, headers=acme) == (200, updated)
    assert call(client, "GET", "/orgs/acme/events/nope", headers=acme)[0] == 404


def test_an_unpublished_event_is_404_on_every_public_route_and_costs_no_rekognition_call(
    client, table, acme, rekognition
):
    seed(table, [(make_photo("acme", "e1", 1, photographer="p"), ("1234",))], published=False)
    photo_id = make_photo("acme", "e1", 1).photo_id
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    routes = ["", "/photos", f"/photos/{photo_id}", "/bibs/1234/photos", "/photographers/p/photos"]
    for path in routes:
        status, answer = get(client, PUBLIC + path)
        assert (status, error_code(answer)) == (404, "EventNotFound"), path
    status, answer = post_selfie(client, f"{PUBLIC}/selfie-search", selfie((200, 30, 30)))
    assert (status, error_code(answer)) == (404, "EventNotFound")
    assert rekognition.calls == []
    call(client, "PUT", ORG, headers=acme, body=SETTINGS)  # published: now the public sees it
    assert get(client, f"{PUBLIC}/photos/{photo_id}")[0] == 200


def test_the_public_event_shows_its_photo_and_photographer_counts(client, table):
    seed(
        table,
        [
            (make_photo("acme", "e1", 1, photographer="ann"), ()),
            (make_photo("acme", "e1", 2, photographer="ann"), ()),
            (make_photo("acme", "e1", 3, photographer="bo"), ()),
            (make_photo("acme", "e1", 4), ()),
        ],
    )
    status, event = get(client, PUBLIC)
    assert status == 200 and event["name"] == "e1 race" and event["date"] == "2025-05-04"
    assert event["photo_count"] == 4
    assert event["photographers"] == [{"handle": "ann", "photo_count": 2}, {"handle": "bo", "photo_count": 1}]


def test_counts_stay_exact_under_retries_photographer_changes_and_deletes(table):
    publish(table, "acme", "e1")
    photo = make_photo("acme", "e1", 1, photographer="ann")
    for _ in range(3):  # a retried Fanout
        table.save_photo(photo, Analysis(bibs=("1234",)))
    assert table.event("acme", "e1")["photo_count"] == 1

    table.save_photo(replace(photo, photographer="bo"), Analysis())  # reprocessed with another handle
    assert table.event("acme", "e1")["photo_count"] == 1
    assert table.photographer_counts("acme", "e1") == [{"handle": "bo", "photo_count": 1}]
    assert table.delete_photo("acme", "e1", photo.photo_id) is not None
    assert table.delete_photo("acme", "e1", photo.photo_id) is None  # a retried delete
    assert table.event("acme", "e1")["photo_count"] == 0
    assert table.photographer_counts("acme", "e1") == []


def test_concurrent_saves_of_one_photo_count_it_once(table):
    from concurrent.futures import ThreadPoolExecutor

    publish(table, "acme", "e1")
    photo = make_photo("acme", "e1", 1, photographer="ann")
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: table.save_photo(photo, Analysis()), range(8)))
    assert table.event("acme", "e1")["photo_count"] == 1
    assert table.photographer_counts("acme", "e1") == [{"handle": "ann", "photo_count": 1}]


def test_a_bib_only_event_indexes_no_faces_and_refuses_selfies_with_409(
    client, table, resources, rekognition
):
    publish(table, "acme", "e1", faces_enabled=False)
    photo = make_photo("acme", "e1", 1, bucket=resources.bucket).to_dict()
    answer = pipeline.index_faces(
        {"photo": photo}, rekognition=rekognition, table=table, settings=clients.settings()
    )
    assert answer["face_ids"] == [] and rekognition.calls == []
    status, body = post_selfie(client, f"{PUBLIC}/selfie-search", selfie((200, 30, 30)))
    assert (status, error_code(body)) == (409, "FacesDisabled")
    assert rekognition.calls == []
    assert get(client, PUBLIC)[1]["faces_enabled"] is False


def test_an_events_bib_rules_admit_two_digit_bibs(table, resources):
    from tests.support.fakes import FakeRekognition

    fake = FakeRekognition(text=lambda b, k: [TextDetection("58", 99.0), TextDetection("1234", 99.0)])
    photo = make_photo("acme", "e1", 1, bucket=resources.bucket).to_dict()
    publish(table, "acme", "e1")
    default = pipeline.detect_text(
        {"photo": photo}, rekognition=fake, table=table, settings=clients.settings()
    )
    assert default["bibs"] == ["1234"]
    publish(table, "acme", "e1", bib_pattern="[A-Za-z]?[0-9]{1,6}")
    small = pipeline.detect_text({"photo": photo}, rekognition=fake, table=table, settings=clients.settings())
    assert small["bibs"] == ["58", "1234"]


# --- uploads ---------------------------------------------------------------------------------


def _policy(grant):
    return json.loads(base64.b64decode(grant["fields"]["policy"]))


def test_an_upload_grant_signs_the_exact_key_type_size_and_photographer(client, table, acme):
    publish(table, "acme", "e1")
    files = [
        {"filename": "DSC 0001.JPG", "content_type": "image/jpeg", "size": 5_000_000, "photographer": "@Ann"}
    ]
    status, answer = call(client, "POST", f"{ORG}/uploads", headers=acme, body={"files": files})
    assert status == 200
    (grant,) = answer["uploads"]
    key = grant["key"]
    assert key == f"acme/e1/raw/{grant['upload_id']}/DSC 0001.JPG"
    conditions = _policy(grant)["conditions"]
    assert {"key": key} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, clients.settings().max_upload_bytes] in conditions
    assert {"x-amz-meta-photographer": "ann"} in conditions
    assert grant["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # SigV4: new buckets refuse SigV2
    assert table.upload("acme", "e1", grant["upload_id"])["status"] == "PENDING"


def test_two_files_with_one_name_never_overwrite_each_other(client, table, acme):
    publish(table, "acme", "e1")
    file = {"filename": "IMG_0001.jpg", "content_type": "image/jpeg", "size": 100}
    keys_ = [
        call(client, "POST", f"{ORG}/uploads", headers=acme, body={"files": [file]})[1]["uploads"][0]["key"]
        for _ in range(2)
    ]
    assert keys_[0] != keys_[1]


def test_a_file_without_an_image_suffix_still_gets_a_key_the_bucket_notifies_for(client, table, acme):
    publish(table, "acme", "e1")
    file = {"filename": "../../etc/passwd", "content_type": "image/png", "size": 100}
    (grant,) = call(client, "POST", f"{ORG}/uploads", headers=acme, body={"files": [file]})[1]["uploads"]
    assert grant["key"].endswith("/passwd.png") and "/../" not in grant["key"]


@pytest.mark.parametrize(
    "files, named",
    [
        ([{"filename": "a.jpg", "content_type": "image/bmp", "size": 10}], "content_type"),
        ([{"filename": "a.jpg", "content_type": "image/jpeg", "size": 10**12}], "size"),
        ([{"filename": "a.jpg", "content_type": "image/jpeg", "size": 10, "sha256": "XYZ"}], "sha256"),
        ([{"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}] * 101, "at most 100"),
        ([], "files"),
    ],
)
def test_an_upload_request_names_the_bad_file(client, table, acme, files, named):
    status, answer = call(client, "POST", f"{ORG}/uploads", headers=acme, body={"files": files})
    assert (status, error_code(answer)) == (400, "InvalidUploadRequest")
    assert named in answer["error"]["message"]


def _deliver(resources, grant, body):
    """What a browser's POST does under moto (which does not check POST policies): store the object."""
    metadata = {k[len("x-amz-meta-") :]: v for k, v in grant["fields"].items() if k.startswith("x-amz-meta-")}
    boto3.client("s3").put_object(
        Bucket=resources.bucket,
        Key=grant["key"],
        Body=body,
        Metadata=metadata,
        ContentType=grant["fields"]["Content-Type"],
    )


def _request(client, headers, *files):
    return call(client, "POST", f"{ORG}/uploads", headers=headers, body={"files": list(files)})[1]["uploads"]


def _jpeg(size=(320, 240), colour=(200, 120, 40), exif_time=None):
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(jpeg_bytes(size, colour)))
    buffer = io.BytesIO()
    if exif_time:
        exif = Image.Exif()
        exif[0x8769] = {0x9003: exif_time}
        image.save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    else:
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_an_upload_goes_from_pending_to_processed_with_its_photo(client, table, acme, resources, lambdas):
    publish(table, "acme", "e1")
    (grant,) = _request(client, acme, {"filename": "a.jpg", "content_type": "image/jpeg", "size": 100})
    path = f"{ORG}/uploads/{grant['upload_id']}"
    assert call(client, "GET", path, headers=acme)[1]["status"] == "PENDING"  # no object yet
    _deliver(resources, grant, _jpeg())
    assert call(client, "GET", path, headers=acme)[1]["status"] == "PENDING"  # not yet picked up
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    status, answer = call(client, "GET", path, headers=acme)
    assert status == 200 and answer["status"] == "PROCESSED"
    assert get(client, f"{PUBLIC}/photos/{answer['photo_id']}")[0] == 200


def test_a_corrupt_upload_ends_failed_with_its_reason(client, table, acme, resources, lambdas):
    publish(table, "acme", "e1")
    (grant,) = _request(client, acme, {"filename": "cut.jpg", "content_type": "image/jpeg", "size": 100})
    _deliver(resources, grant, _jpeg()[:300])
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    status, answer = call(client, "GET", f"{ORG}/uploads/{grant['upload_id']}", headers=acme)
    assert status == 200 and answer["status"] == "FAILED" and answer["error"]["code"] == "CorruptImage"
    assert "truncated" in answer["error"]["message"].lower()


@pytest.mark.parametrize("exif_time", [None, "2025:05:04 08:15:30"])
def test_the_same_bytes_under_two_keys_are_one_photo(client, table, acme, resources, lambdas, exif_time):
    publish(table, "acme", "e1")
    data = _jpeg(exif_time=exif_time)
    file = {"filename": "a.jpg", "content_type": "image/jpeg", "size": len(data)}
    first, second = _request(client, acme, file, {**file, "filename": "copy of a.jpg"})
    _deliver(resources, first, data)
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    _deliver(resources, second, data)
    drain_queue(resources, client)
    wait_for_executions(resources, 2)
    photos = get(client, f"{PUBLIC}/photos")[1]["photos"]
    assert len(photos) == 1 and table.event("acme", "e1")["photo_count"] == 1
    answers = [
        call(client, "GET", f"{ORG}/uploads/{g['upload_id']}", headers=acme)[1] for g in (first, second)
    ]
    assert [a["status"] for a in answers] == ["PROCESSED", "PROCESSED"]
    assert answers[0]["photo_id"] == answers[1]["photo_id"] == photos[0]["photo_id"]
    assert answers[1]["duplicate"] is True
    assert lambdas.invocations.count("index_faces") == 1  # the copy cost no Rekognition calls


def test_bytes_the_event_already_has_get_no_url(client, table, acme, resources, lambdas):
    publish(table, "acme", "e1")
    data = _jpeg()
    digest = ids.content_digest(data).hex()
    file = {"filename": "a.jpg", "content_type": "image/jpeg", "size": len(data), "sha256": digest}
    (grant,) = _request(client, acme, file)
    _deliver(resources, grant, data)
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    (again,) = _request(client, acme, {**file, "filename": "renamed.jpg"})
    assert "url" not in again and again["duplicate"] is True and again["status"] == "PROCESSED"
    assert again["upload_id"] == grant["upload_id"]


# --- failures, reprocess, delete ---------------------------------------------------------------


def test_failures_are_listed_with_their_reasons_in_pages(client, table, acme):
    publish(table, "acme", "e1")
    for n in range(3):
        record_failed(table, "acme", "e1", n, filename=f"bad-{n}.jpg")
    status, first = call(client, "GET", f"{ORG}/failures?limit=2", headers=acme)
    assert status == 200 and len(first["failures"]) == 2 and first["next_cursor"]
    from urllib.parse import quote

    status, rest = call(
        client, "GET", f"{ORG}/failures?limit=2&cursor={quote(first['next_cursor'])}", headers=acme
    )
    names = [f["original_filename"] for f in first["failures"] + rest["failures"]]
    assert sorted(names) == ["bad-0.jpg", "bad-1.jpg", "bad-2.jpg"]
    assert all(f["reason"]["code"] == "CorruptImage" for f in first["failures"])


def test_reprocessing_a_fixed_failed_photo_leaves_it_processed_with_no_failure(
    client, table, acme, resources, lambdas
):
    publish(table, "acme", "e1")
    (grant,) = _request(client, acme, {"filename": "a.jpg", "content_type": "image/jpeg", "size": 100})
    _deliver(resources, grant, _jpeg()[:300])
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    (failure,) = call(client, "GET", f"{ORG}/failures", headers=acme)[1]["failures"]
    boto3.client("s3").put_object(Bucket=resources.bucket, Key=grant["key"], Body=_jpeg())  # fixed
    boto3.client("sqs").purge_queue(QueueUrl=resources.queue_url)  # only the reprocess runs it
    status, answer = call(
        client, "POST", f"{ORG}/reprocess", headers=acme, body={"photo_ids": [failure["photo_id"]]}
    )
    assert status == 202 and answer == {"started": 1, "continuing": False, "unknown": []}
    wait_for_executions(resources, 2)
    assert call(client, "GET", f"{ORG}/failures", headers=acme)[1]["failures"] == []
    assert "FAILED" not in items_by_type(resources)
    assert (
        call(client, "GET", f"{ORG}/uploads/{grant['upload_id']}", headers=acme)[1]["status"] == "PROCESSED"
    )
    assert table.event("acme", "e1")["photo_count"] == 1


def test_reprocessing_all_twice_leaves_the_same_photos_bibs_and_faces(
    client, table, acme, resources, lambdas, monkeypatch
):
    from tests.support.fakes import FakeRekognition

    fake = FakeRekognition(text=lambda b, k: [TextDetection("1234", 99.0)], faces=lambda b, k: ["ann", "bo"])
    monkeypatch.setattr(clients, "rekognition", lambda attempts=4: fake)
    publish(table, "acme", "e1")
    for n, colour in enumerate(((200, 120, 40), (40, 120, 200))):
        (grant,) = _request(client, acme, {"filename": f"{n}.jpg", "content_type": "image/jpeg", "size": 100})
        _deliver(resources, grant, _jpeg(colour=colour))
    drain_queue(resources, client)
    wait_for_executions(resources, 2)

    def state():
        photos = get(client, f"{PUBLIC}/photos")[1]["photos"]
        faces = fake.collections[("acme", "e1")]
        return sorted((p["photo_id"], tuple(p["bibs"])) for p in photos), len(faces)

    before = state()
    assert before[1] == 4
    for runs in (4, 6):
        status, answer = call(client, "POST", f"{ORG}/reprocess", headers=acme, body={"all": True})
        assert status == 202 and answer == {"started": 2, "continuing": False}
        wait_for_executions(resources, runs)
        assert state() == before
    assert table.event("acme", "e1")["photo_count"] == 2


def test_a_retried_reprocess_request_starts_the_same_runs(table):
    class Recording:
        def __init__(self):
            self.names = []

        def start(self, name, payload):
            fresh = name not in self.names
            self.names.append(name)
            return fresh

    publish(table, "acme", "e1")
    seed(table, [(make_photo("acme", "e1", n), ()) for n in range(3)])
    workflow = Recording()
    settings = replace(clients.settings(), rekognition_tps=0)  # start at once: no queue needed
    answers = [
        organiser.reprocess(
            "acme",
            "e1",
            {"all": True},
            table=table,
            workflow=workflow,
            queue=None,
            settings=settings,
            functions=None,
            clock=lambda: 0.0,
        )
        for _ in range(2)
    ]
    assert [a["started"] for a in answers] == [3, 0]
    assert len(set(workflow.names)) == 3  # generation 1 of each photo, asked for twice


def test_deleting_a_photo_removes_every_trace_and_the_counts_drop(
    client, table, acme, resources, lambdas, monkeypatch
):
    from tests.support.fakes import FakeRekognition

    rekognition = FakeRekognition(faces=lambda b, k: ["ann"])
    monkeypatch.setattr(clients, "rekognition", lambda attempts=4: rekognition)
    publish(table, "acme", "e1")
    data = _jpeg()
    file = {"filename": "a.jpg", "content_type": "image/jpeg", "size": len(data), "photographer": "ann"}
    first, copy = _request(client, acme, file, {**file, "filename": "copy.jpg"})
    _deliver(resources, first, data)
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    _deliver(resources, copy, data)
    drain_queue(resources, client)
    wait_for_executions(resources, 2)
    photo_id = call(client, "GET", f"{ORG}/uploads/{first['upload_id']}", headers=acme)[1]["photo_id"]
    assert table.event("acme", "e1")["photo_count"] == 1

    status, _ = call(client, "DELETE", f"{ORG}/photos/{photo_id}", headers=acme)
    assert status == 204
    left = boto3.client("s3").list_objects_v2(Bucket=resources.bucket, Prefix="acme/e1/").get("KeyCount")
    assert left == 0  # raw upload, its copy, and the processed photo
    assert rekognition.collections[("acme", "e1")] == {}
    items = items_by_type(resources)
    assert set(items) <= {"EVENT", "PHOTOGRAPHER", "TOKEN", "PACE"}, items.get("COUNTER")
    assert table.event("acme", "e1")["photo_count"] == 0
    assert get(client, f"{PUBLIC}/photos/{photo_id}")[0] == 404
    assert get(client, PUBLIC)[1]["photographers"] == []
    assert call(client, "DELETE", f"{ORG}/photos/{photo_id}", headers=acme)[0] == 404


def test_deleting_an_event_deletes_everything_and_ends_deleted(
    client, table, acme, resources, lambdas, rekognition
):
    publish(table, "acme", "e1")
    (grant,) = _request(client, acme, {"filename": "a.jpg", "content_type": "image/jpeg", "size": 100})
    _deliver(resources, grant, _jpeg())
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    record_failed(table, "acme", "e1", 7, bucket=resources.bucket)
    status, answer = call(client, "DELETE", ORG, headers=acme)
    assert status == 202 and answer["status"] in ("DELETING", "DELETED")
    assert call(client, "GET", ORG, headers=acme)[1]["status"] == "DELETED"
    assert boto3.client("s3").list_objects_v2(Bucket=resources.bucket, Prefix="acme/e1/").get("KeyCount") == 0
    assert ("acme", "e1") not in rekognition.collections
    assert set(items_by_type(resources)) <= {"EVENT", "TOKEN", "PACE"}
    assert get(client, f"{PUBLIC}/photos")[0] == 404
    status, answer = call(
        client,
        "POST",
        f"{ORG}/uploads",
        headers=acme,
        body={"files": [{"filename": "a.jpg", "content_type": "image/jpeg", "size": 1}]},
    )
    assert (status, error_code(answer)) == (409, "EventDeleted")


def test_retention_deletes_the_collection_then_selfie_search_is_410(client, table, rekognition):
    publish(table, "acme", "e1", retention_days=30)
    publish(table, "acme", "e2", retention_days=None)
    index_people(
        rekognition, [(make_photo("acme", "e1", 1), ["alice"]), (make_photo("acme", "e2", 1), ["alice"])]
    )
    before = organiser.expire_faces(
        table=table, rekognition=rekognition, today=date(2025, 6, 2), now=datetime.now(UTC)
    )
    assert before == []  # 29 days after the race
    expired = organiser.expire_faces(
        table=table, rekognition=rekognition, today=date(2025, 6, 3), now=datetime.now(UTC)
    )
    assert expired == ["acme/e1"]
    assert set(rekognition.collections) == {("acme", "e2")}
    status, body = post_selfie(client, f"{PUBLIC}/selfie-search", selfie((200, 30, 30)))
    assert (status, error_code(body)) == (410, "FacesExpired")
    assert get(client, PUBLIC)[1]["faces_available"] is False


def test_redrive_moves_dead_lettered_notifications_back(resources):
    sqs = boto3.client("sqs")
    for n in range(13):
        sqs.send_message(QueueUrl=resources.dlq_url, MessageBody=json.dumps({"n": n}))
    assert redrive.redrive(sqs, source_url=resources.dlq_url, target_url=resources.queue_url) == 13
    bodies = []
    while messages := sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        bodies += [
            body["n"] for body in (json.loads(m["Body"]) for m in messages) if "n" in body
        ]  # not S3's test event
        for m in messages:
            sqs.delete_message(QueueUrl=resources.queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(bodies) == list(range(13))
    assert redrive.redrive(sqs, source_url=resources.dlq_url, target_url=resources.queue_url) == 0


def test_uploads_keys_carry_their_upload_id(table):
    raw = keys.parse_raw_key("acme/e1/raw/01JTB2Y4X0ABCDEFGHJKMNPQRS/IMG 1.jpg")
    assert raw.upload_id == "01JTB2Y4X0ABCDEFGHJKMNPQRS" and raw.original_filename == "IMG 1.jpg"
    assert keys.parse_raw_key("acme/e1/raw/finish/IMG 1.jpg").upload_id is None
    assert keys.parse_raw_key("acme/e1/raw/IMG 1.jpg").upload_id is None


def test_bytes_that_failed_get_no_url_but_their_failure(client, table, acme, resources, lambdas):
    # Sent again, identical bytes would be the same object (same key, same ETag): no run would
    # start and the upload would wait forever. The answer says they failed, and why.
    publish(table, "acme", "e1")
    data = _jpeg()[:300]
    file = {
        "filename": "cut.jpg",
        "content_type": "image/jpeg",
        "size": len(data),
        "sha256": ids.content_digest(data).hex(),
    }
    (grant,) = _request(client, acme, file)
    _deliver(resources, grant, data)
    drain_queue(resources, client)
    wait_for_executions(resources, 1)
    (again,) = _request(client, acme, file)
    assert "url" not in again and again["status"] == "FAILED" and again["error"]["code"] == "CorruptImage"
