"""The local sandbox end to end: moto server, the real state machine, the poller, the local
Rekognition with the offline engines, and the API over HTTP on free ports."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
import pytest
import urllib3
from botocore.config import Config

from sandbox.runtime import Ports, QueuePoller, Sandbox, offline_engines
from sandbox.samples import ensure_samples
from sandbox.uploads import organiser_token, photo_files, publish_event, upload, wait_for
from tests.support.workflow import jpeg_bytes


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(ports=Ports.free(), engines=offline_engines, retry_sleep_scale=0.01) as running:
        yield running


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return ensure_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def demo(sandbox, samples):
    """The sample photos ingested once into event demo/city-10k."""
    files, _ = photo_files(samples.photos)
    publish_event(sandbox.resources.table_name, "demo", "city-10k")
    keys = upload(files, samples.photos, bucket=sandbox.resources.bucket, org="demo", event="city-10k")
    return wait_for(
        keys, table_name=sandbox.resources.table_name, org="demo", event="city-10k", timeout=300, out=None
    )


def api(sandbox, path, body=None):
    request = urllib.request.Request(
        sandbox.api_url + path,
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "image/jpeg"} if body is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_every_sample_photo_is_processed(demo, samples):
    assert not demo.failed and not demo.missing
    assert {key.rsplit("/", 1)[-1] for key in demo.processed} == set(samples.bibs)


def test_bib_search_finds_the_photos_showing_the_bib(sandbox, demo, samples):
    for bib in ("1234", "0567"):
        status, body = api(sandbox, f"/events/demo/city-10k/bibs/{bib}/photos")
        assert status == 200
        expected = {name for name, bibs in samples.bibs.items() if bib in bibs}
        assert {photo["original_filename"] for photo in body["photos"]} == expected, bib


def test_selfie_search_finds_the_face_in_both_photos(sandbox, demo, samples):
    status, body = api(
        sandbox, "/events/demo/city-10k/selfie-search?consent=true", samples.selfie.read_bytes()
    )
    assert status == 200, body
    expected = {name for name, faces in samples.faces.items() if faces}
    assert {match["photo"]["original_filename"] for match in body["matches"]} == expected
    assert all(match["similarity"] >= 85 for match in body["matches"])


def test_corrupt_file_ends_as_a_failed_photo_with_a_reason(sandbox):
    res = sandbox.resources
    key = "demo/broken/raw/cut-off.jpg"
    publish_event(res.table_name, "demo", "broken")
    boto3.client("s3").put_object(Bucket=res.bucket, Key=key, Body=jpeg_bytes()[:400])
    outcome = wait_for([key], table_name=res.table_name, org="demo", event="broken", timeout=120, out=None)
    (failed,) = outcome.failed.values()
    assert failed["error"] == "CorruptImage" and "truncated" in failed["cause"].lower()
    status, body = api(sandbox, f"/events/demo/broken/photos/{failed['photo_id']}")
    assert status == 200 and body["status"] == "FAILED" and body["reason"]["code"] == "CorruptImage"


def test_a_photographers_presigned_post_is_checked_and_then_processed(sandbox):
    res = sandbox.resources
    # Signed as the app's clients sign (chalicelib/clients.py): a fresh session reads the sandbox's
    # credentials, where boto3's default session keeps whatever it first read in this process.
    s3 = boto3.session.Session().client("s3", config=Config(signature_version="v4"))
    key = "demo/post/raw/finish.jpg"
    post = s3.generate_presigned_post(
        res.bucket,
        key,
        Fields={"Content-Type": "image/jpeg", "x-amz-meta-photographer": "@Snap.Shooter"},
        Conditions=[
            {"Content-Type": "image/jpeg"},
            ["content-length-range", 1, 10 * 1024 * 1024],
            {"x-amz-meta-photographer": "@Snap.Shooter"},
        ],
    )
    photo = ("finish.jpg", jpeg_bytes(), "image/jpeg")
    wrong_type = {**post["fields"], "Content-Type": "image/png", "file": photo}
    refused = urllib3.request("POST", post["url"], fields=wrong_type, timeout=30)
    assert refused.status == 403 and b"<Code>AccessDenied</Code>" in refused.data
    accepted = urllib3.request("POST", post["url"], fields={**post["fields"], "file": photo}, timeout=30)
    assert accepted.status == 204, accepted.data
    outcome = wait_for([key], table_name=res.table_name, org="demo", event="post", timeout=300, out=None)
    assert outcome.processed[key]["photographer"] == "snap.shooter"


def test_the_photographers_command_uploads_a_folder_once_and_accounts_for_every_file(
    sandbox, samples, tmp_path
):
    import io
    import shutil

    from scripts import upload as command

    folder = tmp_path / "card"
    shutil.copytree(samples.photos, folder)
    (folder / "cut-off.jpg").write_bytes(jpeg_bytes()[:400])
    (folder / "notes.txt").write_text("not a photo")
    res = sandbox.resources
    publish_event(res.table_name, "demo", "cli")
    token = organiser_token(res.table_name, "demo")
    api = command.Api(sandbox.api_url, token, "demo", "cli")

    first = command.run(
        folder, api, photographer="@Snap.Shooter", workers=2, timeout=600, poll=0.5, out=io.StringIO()
    )
    assert first.accounted
    assert first.count("PROCESSED") == len(samples.bibs) and first.count("FAILED") == 1
    (failed,) = [f for f in first.files if f.status == "FAILED"]
    assert failed.name == "cut-off.jpg" and failed.reason.startswith("CorruptImage")
    assert first.skipped == [("notes.txt", first.skipped[0][1])]

    second = command.run(
        folder, api, photographer="@Snap.Shooter", workers=2, timeout=600, poll=0.5, out=io.StringIO()
    )
    assert second.accounted, [(f.name, f.status, f.reason) for f in second.files]
    assert all(f.known for f in second.files)  # nothing was sent again, the failed file included
    assert [(f.status, f.reason) for f in second.files if f.name == "cut-off.jpg"] == [
        ("FAILED", failed.reason)
    ]
    status, event = api_get(sandbox, "/events/demo/cli")
    assert status == 200 and event["photo_count"] == len(samples.bibs)
    assert event["photographers"] == [{"handle": "snap.shooter", "photo_count": len(samples.bibs)}]


def api_get(sandbox, path):
    return api(sandbox, path)


def test_the_same_file_uploaded_twice_is_one_photo(sandbox, samples):
    res = sandbox.resources
    files, _ = photo_files(samples.photos)
    publish_event(res.table_name, "demo", "twice")
    first = upload(files[:1], samples.photos, bucket=res.bucket, org="demo", event="twice")
    wait_for(first, table_name=res.table_name, org="demo", event="twice", timeout=300, out=None)
    second = upload(files[:1], samples.photos, bucket=res.bucket, org="demo", event="twice")
    assert first == second
    _wait_until_queue_is_empty(res.queue_url)
    status, body = api(sandbox, "/events/demo/twice/photos")
    assert status == 200 and len(body["photos"]) == 1
    sfn = boto3.client("stepfunctions")
    inputs = [
        json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])["key"]
        for e in sfn.list_executions(stateMachineArn=res.state_machine_arn)["executions"]
    ]
    assert inputs.count(first[0]) == 1


def _wait_until_queue_is_empty(queue_url, timeout=60.0):
    import time

    sqs = boto3.client("sqs")
    deadline = time.monotonic() + timeout
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        if all(attributes[name] == "0" for name in names):
            return
        time.sleep(0.2)
    raise TimeoutError("the ingest queue did not drain")


def test_poller_leaves_failed_batches_for_redelivery_and_the_dlq(sandbox):
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="poller-test-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(
        QueueName="poller-test",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody="{}")
    calls = []
    poller = QueuePoller(
        queue_url=source,
        handler="h",
        invoke=lambda name, event: calls.append(event) or ({"errorType": "Boom"}, True),
        batch_size=1,
        stop=None,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:poller-test",
    )
    for _ in range(4):
        poller.poll_once()
    assert len(calls) == 2  # received twice, then moved to the dead-letter queue
    assert sqs.receive_message(QueueUrl=queue).get("Messages")


def test_poller_receives_many_and_hands_each_batch_to_the_handler_alone(sandbox):
    sqs = boto3.client("sqs")
    source = sqs.create_queue(QueueName="poller-batches", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for index in range(7):
        sqs.send_message(QueueUrl=source, MessageBody=json.dumps({"n": index}))
    calls = []

    def invoke(name, event):
        calls.append([json.loads(record["body"])["n"] for record in event["Records"]])
        failed = calls[-1] == [3]
        return ({"errorType": "Boom"} if failed else {}), failed

    poller = QueuePoller(
        queue_url=source,
        handler="h",
        invoke=invoke,
        batch_size=1,
        stop=None,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:poller-batches",
    )
    assert poller.poll_once() == 7  # one receive
    assert sorted(calls) == [[n] for n in range(7)]  # one invocation per message: the batch size
    left = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert left["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"  # only the failed one


def test_the_sandboxs_quicker_retention_check_still_drops_expired_messages(sandbox):
    # _moto_at_scale reads the retention period alone instead of every queue attribute. On the
    # module's running sandbox: moto's own mock (the `aws` fixture) would reset its state.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    from sandbox.runtime import _moto_at_scale

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["retention"]
    queue._messages[0].sent_timestamp -= 61_000  # sent 61 s ago: past the 60 s retention
    with _moto_at_scale():
        assert sqs.receive_message(QueueUrl=url).get("Messages") is None
        sqs.send_message(QueueUrl=url, MessageBody="new")
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [message["Body"] for message in received] == ["new"]


def test_poller_under_a_hold_receives_one_batch_at_a_time(sandbox):
    # The sandbox's hold on running executions is checked before each receive: a receive of 10
    # would start 10 runs past it (real engines then time out on a busy machine).
    sqs = boto3.client("sqs")
    source = sqs.create_queue(QueueName="poller-held", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=source, MessageBody=json.dumps({"n": index}))
    poller = QueuePoller(
        queue_url=source,
        handler="h",
        invoke=lambda name, event: ({}, False),
        batch_size=1,
        stop=None,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:poller-held",
        receive_max=1,
    )
    assert [poller.poll_once() for _ in range(4)] == [1, 1, 1, 0]
