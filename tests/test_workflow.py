"""The real statemachine.json, executed by moto, with Task states running the app's functions."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime

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
    StepFaults,
    drain_queue,
    items_by_type,
    jpeg_bytes,
    step_name,
    task_states,
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


def test_a_paced_run_waits_in_the_state_machine_until_its_slot(
    resources, rekognition, lambdas, client, monkeypatch
):
    settings = replace(clients.settings(), rekognition_tps=0.25, rekognition_pace_share=1.0)  # 4 s apart
    monkeypatch.setattr(clients, "settings", lambda: settings)
    preprocessed = {}
    invoke = lambdas.invoke

    def timed(function_name, payload):
        if function_name.endswith("-preprocess"):
            preprocessed[payload["key"]] = time.time()
        return invoke(function_name, payload)

    monkeypatch.setattr(lambdas, "invoke", timed)
    for n in (1, 2):
        upload(resources, f"acme/city-10k/raw/IMG_100{n}.jpg", jpeg_bytes())
    drain_queue(resources, client)

    executions = wait_for_executions(resources, 2)
    assert [e["status"] for e in executions] == ["SUCCEEDED", "SUCCEEDED"]
    runs = {json.loads(e["input"])["key"]: e for e in executions}
    slot = {
        key: datetime.strptime(json.loads(e["input"])["not_before"], "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=UTC)
        .timestamp()
        for key, e in runs.items()
    }
    first, second = sorted(slot, key=slot.get)
    assert slot[second] - slot[first] == 4.0
    waited = {key: preprocessed[key] - runs[key]["startDate"].timestamp() for key in runs}
    # The first slot is now: it runs at once. The second waits in WaitForTurn: at least 3 s away
    # (kept to the second), of which moto, rounding the wait down to whole seconds, waits 2 or more.
    assert waited[first] < 1.5 and waited[second] >= 1.9
    # Nothing ran more than a second before its turn (the calls' own turns absorb that second).
    assert all(preprocessed[key] >= slot[key] - 1.0 for key in runs)


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


# --- every Retry of statemachine.json, read from the definition itself ------------------------

_TASKS = task_states(json.loads((PROJECT_DIR / "statemachine.json").read_text()))
_LAMBDA_FAULTS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "States.Timeout",
]
_THROTTLES = ["ThrottlingException", "ProvisionedThroughputExceededException"]
# Every retrier of every Task state: its errors, and how many retries it promises. Written out
# here, not read from statemachine.json, so a changed MaxAttempts fails a test. Step Functions
# counts a retrier's attempts across all of the names it lists, so each case names them in turn.
_RETRIERS = {
    "Preprocess": [(_THROTTLES, 6), (["Lambda.TooManyRequestsException"], 8), (_LAMBDA_FAULTS, 3)],
    "DetectText": [
        (["TurnRefused"], 40),
        ([*_THROTTLES, "RekognitionUnavailable"], 10),
        (["Lambda.TooManyRequestsException"], 8),
        (_LAMBDA_FAULTS, 3),
    ],
    "IndexFaces": [
        (["TurnRefused"], 40),
        ([*_THROTTLES, "RekognitionUnavailable"], 10),
        (["Lambda.TooManyRequestsException"], 8),
        (_LAMBDA_FAULTS, 3),
    ],
    "Fanout": [
        ([*_THROTTLES, "UnprocessedItemsError"], 6),
        (["Lambda.TooManyRequestsException"], 8),
        (_LAMBDA_FAULTS, 3),
    ],
    "RecordFailure": [
        ([*_THROTTLES, *_LAMBDA_FAULTS[:3], "Lambda.TooManyRequestsException", "States.Timeout"], 8),
    ],
}
_CASES = [
    pytest.param(state, errors, attempts, id=f"{state}-{errors[0]}")
    for state, retriers in _RETRIERS.items()
    for errors, attempts in retriers
]


def test_every_retrier_of_the_state_machine_is_exercised_below():
    in_definition = {state: [r["ErrorEquals"] for r in task["Retry"]] for state, task in _TASKS.items()}
    assert in_definition == {
        state: [errors for errors, _ in retriers] for state, retriers in _RETRIERS.items()
    }


@pytest.fixture
def faults(lambdas, monkeypatch):
    injected = StepFaults(lambdas)
    monkeypatch.setattr(lambdas, "invoke", injected.invoke)
    return injected


def _run_to_the_end(resources, client, key: str) -> dict:
    upload(resources, key, jpeg_bytes())
    drain_queue(resources, client)
    (execution,) = wait_for_executions(resources, 1)
    return execution


@pytest.mark.parametrize(("state", "errors", "attempts"), _CASES)
def test_a_step_failing_max_attempts_times_is_called_once_more_and_succeeds(
    resources, rekognition, faults, client, state, errors, attempts
):
    step = step_name(state)
    if state == "RecordFailure":  # reached only when a photo fails: a corrupt one, never retried
        faults.fail("preprocess", ["CorruptImage"], 1)
    faults.fail(step, errors, attempts)

    execution = _run_to_the_end(resources, client, f"acme/city-10k/raw/{state}.jpg")

    assert faults.calls.count(step) == attempts + 1
    items = items_by_type(resources)
    if state == "RecordFailure":
        assert execution["status"] == "FAILED" and items["FAILED"][0]["error"] == "CorruptImage"
    else:
        assert execution["status"] == "SUCCEEDED", items.get("FAILED")
        (photo,) = items["PHOTO"]
        assert photo["bibs"] == ["1234", "0567"] and photo["face_count"] == 1
        assert "bibs_error" not in photo and "faces_error" not in photo


@pytest.mark.parametrize(("state", "errors", "attempts"), _CASES)
def test_a_step_that_keeps_failing_is_called_max_attempts_plus_one_times_then_caught(
    resources, rekognition, faults, client, state, errors, attempts
):
    step, error = step_name(state), errors[-1]  # the name the recovery case may not reach
    if state == "RecordFailure":
        faults.fail("preprocess", ["CorruptImage"], 1)
    faults.fail(step, [error], attempts + 5)

    execution = _run_to_the_end(resources, client, f"acme/city-10k/raw/{state}.jpg")

    assert faults.calls.count(step) == attempts + 1
    items = items_by_type(resources)
    throttling = ("Throttl" in error) or ("Provisioned" in error) or error == "TurnRefused"
    if state in ("DetectText", "IndexFaces") and not throttling:
        # Anything but throttling falls back to no bibs (or no faces), with the reason.
        assert execution["status"] == "SUCCEEDED"
        (photo,) = items["PHOTO"]
        assert photo["bibs_error" if state == "DetectText" else "faces_error"] == error
    else:
        assert execution["status"] == "FAILED" and "PHOTO" not in items
        if state != "RecordFailure":
            (failed,) = items["FAILED"]
            # A turn refused through its whole budget ends as the throttling failure it stands for.
            assert failed["error"] == ("RekognitionThrottled" if error == "TurnRefused" else error)
