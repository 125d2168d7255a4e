"""The real statemachine.json, executed by moto, with Task states running the app's functions."""

from __future__ import annotations

import pytest
from chalice.test import Client

import app as snaprace
from chalicelib import clients
from chalicelib.domain.bibs import TextDetection
from chalicelib.domain.errors import RekognitionUnavailable, ThrottlingException
from sandbox.lambdas import LocalLambdas
from sandbox.stage import PROJECT_DIR
from tests.support.aws import STAGE
from tests.support.fakes import FakeRekognition
from tests.support.workflow import (
    drain_queue,
    items_by_type,
    jpeg_bytes,
    upload,
    wait_for_executions,
)


def _two_bibs(bucket, key):
    return [
        TextDetection("A1234", 97.0, "WORD"),
        TextDetection("0567", 95.5, "WORD"),
        TextDetection("1234", 99.0, "WORD"),
        TextDetection("FINISH", 99.0, "WORD"),
        TextDetection("A1234 0567", 96.0, "LINE"),
    ]


@pytest.fixture
def rekognition(monkeypatch):
    fake = FakeRekognition(text=_two_bibs, faces=lambda bucket, key: ["runner-1"])
    monkeypatch.setattr(clients, "rekognition", lambda attempts=4: fake)
    return fake


@pytest.fixture
def lambdas():
    dispatcher = LocalLambdas(snaprace.app, STAGE, retry_sleep_scale=0)
    with dispatcher.installed():
        yield dispatcher


@pytest.fixture
def client():
    return Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))


def test_photo_with_two_bibs_and_a_face_becomes_one_photo_listed_under_both_bibs(
    resources, rekognition, lambdas, client, table
):
    upload(
        resources,
        "acme/city-10k/raw/finish line/IMG 0001.jpg",
        jpeg_bytes(),
        {"instagram-handle": "@Snap.Shooter"},
    )
    assert drain_queue(resources, client) == 2  # S3's s3:TestEvent, then the upload

    (execution,) = wait_for_executions(resources, 1)
    assert execution["status"] == "SUCCEEDED", [
        (f["error"], f["cause"]) for f in items_by_type(resources).get("FAILED", [])
    ]

    items = items_by_type(resources)
    (photo,) = items["PHOTO"]
    assert photo["status"] == "PROCESSED"
    assert photo["bibs"] == ["1234", "0567"]
    assert len(photo["face_ids"]) == 1 and photo["face_count"] == 1
    assert photo["photographer"] == "snap.shooter"
    assert photo["original_filename"] == "IMG 0001.jpg"
    assert [p["photo_id"] for p in table.gallery_page("acme", "city-10k", limit=5).items] == [
        photo["photo_id"]
    ]
    listed = table.photographer_page("acme", "city-10k", "snap.shooter", limit=5).items
    assert [p["photo_id"] for p in listed] == [photo["photo_id"]]
    assert sorted(item["bib"] for item in items["BIB_INDEX"]) == ["0567", "1234"]
    for bib in ("0567", "1234"):
        (entry,) = table.bib_page("acme", "city-10k", bib, limit=5).items
        assert entry["photo_id"] == photo["photo_id"]
        assert entry["thumbhash"] == photo["thumbhash"]
        assert entry["processed_key"] == photo["processed_key"]
    assert "FAILED" not in items
    assert lambdas.invocations.count("preprocess") == 1
    assert lambdas.invocations.count("fanout") == 1


def test_detect_text_that_keeps_throttling_is_never_published_without_its_bibs(
    resources, rekognition, lambdas, client, table
):
    rekognition.fail("detect_text", ThrottlingException("Rate exceeded"))
    upload(resources, "acme/city-10k/raw/IMG_0002.jpg", jpeg_bytes())
    drain_queue(resources, client)

    (execution,) = wait_for_executions(resources, 1)
    assert execution["status"] == "FAILED"
    items = items_by_type(resources)
    assert "PHOTO" not in items and "BIB_INDEX" not in items
    (failed,) = items["FAILED"]
    assert failed["error"] == "RekognitionThrottled" and "Reprocess" in failed["cause"]
    # Retried first: the call plus MaxAttempts (10) retries, each after a jittered wait of at most
    # MaxDelaySeconds (60).
    assert rekognition.calls.count("detect_text") == 11
    throttle_waits = lambdas.retry_sleeps
    assert len(throttle_waits) == 10 and all(0 <= wait <= 60 for wait in throttle_waits)


def test_the_pipelines_rekognition_calls_are_retried_by_step_functions_alone(
    resources, lambdas, client, monkeypatch
):
    # A botocore retry inside the Lambda would be a Rekognition call that took no paced turn.
    fake, asked = FakeRekognition(text=_two_bibs, faces=lambda bucket, key: ["runner-1"]), []
    monkeypatch.setattr(clients, "rekognition", lambda attempts=4: asked.append(attempts) or fake)
    upload(resources, "acme/city-10k/raw/IMG_0005.jpg", jpeg_bytes())
    drain_queue(resources, client)

    (execution,) = wait_for_executions(resources, 1)
    assert execution["status"] == "SUCCEEDED"
    assert fake.calls.count("detect_text") == 1 and fake.calls.count("index_faces") == 1
    steps = [n for n in lambdas.invocations if n in ("detect_text", "index_faces")]
    assert steps == ["detect_text", "index_faces"] or steps == ["index_faces", "detect_text"]
    assert asked.count(clients.STEP_RETRIED) == 2 and clients.STEP_RETRIED == 1
    real = clients._client("rekognition", clients.STEP_RETRIED)
    assert real.meta.config.retries["total_max_attempts"] == 1  # the call itself, no retry


def test_rekognition_server_faults_are_retried_then_fall_back_with_the_reason(
    resources, rekognition, lambdas, client
):
    rekognition.fail("detect_text", RekognitionUnavailable("InternalServerError"))
    upload(resources, "acme/city-10k/raw/IMG_0003.jpg", jpeg_bytes())
    drain_queue(resources, client)

    (execution,) = wait_for_executions(resources, 1)
    assert execution["status"] == "SUCCEEDED"
    (photo,) = items_by_type(resources)["PHOTO"]
    assert photo["bibs"] == [] and photo["bibs_error"] == "RekognitionUnavailable"
    assert photo["face_count"] == 1
    assert rekognition.calls.count("detect_text") == 11


def test_a_throttled_detect_text_that_recovers_publishes_the_bibs(resources, rekognition, lambdas, client):
    rekognition.fail("detect_text", ThrottlingException("Rate exceeded"), times=3)
    upload(resources, "acme/city-10k/raw/IMG_0004.jpg", jpeg_bytes())
    drain_queue(resources, client)

    (execution,) = wait_for_executions(resources, 1)
    assert execution["status"] == "SUCCEEDED"
    (photo,) = items_by_type(resources)["PHOTO"]
    assert photo["bibs"] == ["1234", "0567"] and "bibs_error" not in photo
    assert rekognition.calls.count("detect_text") == 4


def test_corrupt_upload_ends_as_a_failed_record(resources, rekognition, lambdas, client, table):
    truncated = jpeg_bytes()[:300]
    upload(resources, "acme/city-10k/raw/broken.jpg", truncated)
    drain_queue(resources, client)

    (execution,) = wait_for_executions(resources, 1)
    assert execution["status"] == "FAILED"

    items = items_by_type(resources)
    (failed,) = items["FAILED"]
    assert failed["error"] == "CorruptImage"
    assert failed["raw_key"] == "acme/city-10k/raw/broken.jpg"
    assert failed["cause"]
    assert table.failure("acme", "city-10k", failed["photo_id"])["error"] == "CorruptImage"
    assert "PHOTO" not in items
    assert "detect_text" not in lambdas.invocations
