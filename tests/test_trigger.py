"""The SQS trigger through chalice.test.Client: one execution per raw photo, idempotently."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from chalice.test import Client

import app as snaprace
from chalicelib import clients
from chalicelib.adapters.workflow import Workflow
from chalicelib.domain.errors import ThrottlingException
from sandbox.stage import PROJECT_DIR
from tests.support.aws import STAGE
from tests.support.workflow import jpeg_bytes, s3_notification, sqs_event, upload


@pytest.fixture
def client():
    return Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))


def executions(res):
    sfn = boto3.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=res.state_machine_arn)["executions"]


def execution_input(res, execution):
    sfn = boto3.client("stepfunctions")
    return json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])


def queued_bodies(res):
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=res.queue_url, MaxNumberOfMessages=10)["Messages"]
    return [message["Body"] for message in messages if "s3:TestEvent" not in message["Body"]]


def test_duplicate_delivery_starts_one_execution(resources, client):
    upload(resources, "acme/city-10k/raw/IMG_0001.jpg", jpeg_bytes())
    (body,) = queued_bodies(resources)
    for attempt in range(3):
        client.lambda_.invoke("on_upload", sqs_event(resources, body, f"m-{attempt}"))
    (execution,) = executions(resources)
    started = execution_input(resources, execution)
    assert started["key"] == "acme/city-10k/raw/IMG_0001.jpg"
    assert started["bucket"] == resources.bucket
    assert started["etag"] and started["version_id"] is None
    assert execution["stateMachineArn"] == (
        f"arn:aws:states:{resources.region}:{resources.account}:stateMachine:snaprace-dev-ingest"
    )


def test_test_event_starts_nothing(resources, client):
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": resources.bucket})
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    assert executions(resources) == []


def test_processed_key_starts_nothing(resources, client):
    body = s3_notification(resources.bucket, "acme/city-10k/processed/01JTB2Y4X0ABCDEFGHJKMNPQRS.jpg")
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    assert executions(resources) == []


def test_raw_key_with_an_unusable_org_id_is_rejected_loudly(resources, client, caplog):
    body = s3_notification(resources.bucket, "acme#1/e1/raw/a.jpg")
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    assert executions(resources) == []
    assert any(r.levelname == "ERROR" and "acme#1/e1/raw/a.jpg" in r.getMessage() for r in caplog.records)


def test_body_that_is_not_an_s3_notification_is_dropped_without_error(resources, client):
    for body in [
        "not json",
        json.dumps({"hello": "world"}),
        json.dumps([1, 2]),
        json.dumps({"Records": [{"eventSource": "aws:sns"}]}),
    ]:
        client.lambda_.invoke("on_upload", sqs_event(resources, body))
    assert executions(resources) == []


def test_every_record_of_a_notification_starts_its_own_execution(resources, client):
    first = json.loads(s3_notification(resources.bucket, "acme/e1/raw/a.jpg", etag="e1"))
    second = json.loads(s3_notification(resources.bucket, "acme/e1/raw/b.jpg", etag="e2"))
    body = json.dumps({"Records": first["Records"] + second["Records"]})
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    keys = sorted(execution_input(resources, e)["key"] for e in executions(resources))
    assert keys == ["acme/e1/raw/a.jpg", "acme/e1/raw/b.jpg"]


def test_event_keys_are_decoded_before_use(resources, client):
    key = "acme/e1/raw/my race+day/서울 1.jpg"
    upload(resources, key, jpeg_bytes())
    (body,) = queued_bodies(resources)
    assert "서울" not in body  # S3 sends the key URL-encoded
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    (execution,) = executions(resources)
    assert execution_input(resources, execution)["key"] == key


def test_raw_object_is_tagged_keeping_its_other_tags(resources, client):
    s3 = boto3.client("s3")
    key = "acme/e1/raw/IMG_7.jpg"
    s3.put_object(Bucket=resources.bucket, Key=key, Body=jpeg_bytes(), Tagging="camera=a7")
    (body,) = queued_bodies(resources)
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=resources.bucket, Key=key)["TagSet"]}
    assert tags == {"camera": "a7", "folder": "raw"}


def test_missing_raw_object_still_starts_an_execution(resources, client):
    # Tagging is best effort; the pipeline records the failure, so nothing is lost.
    body = s3_notification(resources.bucket, "acme/e1/raw/gone.jpg")
    client.lambda_.invoke("on_upload", sqs_event(resources, body))
    assert len(executions(resources)) == 1


def test_throttled_start_raises_so_sqs_redelivers(resources, client, monkeypatch):
    sfn = boto3.client("stepfunctions")
    stubber = Stubber(sfn)
    stubber.add_client_error(
        "start_execution", service_error_code="ThrottlingException", http_status_code=400
    )
    stubber.activate()
    workflow = Workflow(sfn, boto3.client("sts"), "snaprace-dev-ingest")
    monkeypatch.setattr(clients, "workflow", lambda: workflow)
    body = s3_notification(resources.bucket, "acme/e1/raw/a.jpg")
    with pytest.raises(ThrottlingException):
        client.lambda_.invoke("on_upload", sqs_event(resources, body))
