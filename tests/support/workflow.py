"""Helpers for tests that run the real statemachine.json through moto."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import boto3
from PIL import Image

from sandbox.resources import StageResources


def jpeg_bytes(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """Return a small JPEG with some structure (a gradient and a block)."""
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 4):
        for y in range(0, size[1], 8):
            image.putpixel((x, y), (x % 256, y % 256, 128))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def upload(res: StageResources, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
    boto3.client("s3").put_object(Bucket=res.bucket, Key=key, Body=body, Metadata=metadata or {})


def drain_queue(res: StageResources, client) -> int:
    """Deliver every queued S3 notification to the app's SQS handler; return how many."""
    sqs = boto3.client("sqs")
    delivered = 0
    while True:
        messages = sqs.receive_message(QueueUrl=res.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return delivered
        for message in messages:
            event = sqs_event(res, message["Body"], message["MessageId"])
            client.lambda_.invoke("on_upload", event)
            sqs.delete_message(QueueUrl=res.queue_url, ReceiptHandle=message["ReceiptHandle"])
            delivered += 1


def sqs_event(res: StageResources, body: str, message_id: str = "m-1") -> dict[str, Any]:
    """Return the Lambda event SQS delivers for one message."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"rh-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": res.queue_arn,
                "awsRegion": res.region,
            }
        ]
    }


def s3_notification(
    bucket: str,
    key: str,
    *,
    etag: str = "abc123",
    size: int = 1000,
    event_time: str = "2025-05-04T08:00:00.000Z",
    version_id: str | None = None,
) -> str:
    """Return an S3 ObjectCreated notification body (key URL-encoded as S3 does)."""
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": "00A1"}
    if version_id:
        obj["versionId"] = version_id
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": event_time,
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": obj},
                }
            ]
        }
    )


def wait_for_executions(res: StageResources, expected: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until `expected` executions exist and none is running; return their descriptions."""
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        listed = sfn.list_executions(stateMachineArn=res.state_machine_arn)["executions"]
        if len(listed) >= expected and all(e["status"] != "RUNNING" for e in listed):
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]
        if time.monotonic() > deadline:
            raise TimeoutError(f"executions still running or missing: {listed}")
        time.sleep(0.05)


def items_by_type(res: StageResources) -> dict[str, list[dict[str, Any]]]:
    """Return every table item grouped by type (and FAILED status)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    ddb = boto3.client("dynamodb")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=res.table_name):
        for raw in page["Items"]:
            item = {k: deserializer.deserialize(v) for k, v in raw.items()}
            kind = "FAILED" if item.get("status") == "FAILED" else item.get("type", "COUNTER")
            grouped.setdefault(kind, []).append(item)
    return grouped


def task_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return every Task state of an ASL definition by name, including those inside Parallel branches."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            found[name] = state
        for branch in state.get("Branches", []):
            found.update(task_states(branch))
    return found


def step_name(state: str) -> str:
    """Return the app function a Task state runs: `DetectText` runs `detect_text`."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in state).lstrip("_")


class StepFaults:
    """Makes a step's next invocations fail the way Step Functions would see them, and counts calls.

    A function error carries its exception's class name (errorType), which becomes the error name.
    Lambda's own refusals (`Lambda.TooManyRequestsException`...) are named by Step Functions from
    the failed Invoke call; moto names every failed call "Exception", so they are reported here as
    the function error Step Functions would name. `States.Timeout` is a TimeoutError, which is
    what moto's interpreter turns into it.
    """

    def __init__(self, lambdas: Any) -> None:
        self._lambdas = lambdas
        self._invoke = lambdas.invoke
        self._planned: dict[str, list[str]] = {}
        self.calls: list[str] = []

    def fail(self, step: str, errors: list[str], times: int) -> None:
        """Make the next `times` invocations of `step` fail, naming `errors` in turn."""
        self._planned[step] = [errors[n % len(errors)] for n in range(times)]

    def invoke(self, function_name: str, payload: Any) -> tuple[Any, bool]:
        step = function_name.rsplit("-", 1)[-1]  # the app's function names have no hyphen
        self.calls.append(step)
        planned = self._planned.get(step)
        if not planned:
            return self._invoke(function_name, payload)
        error = planned.pop(0)
        if error == "States.Timeout":
            raise TimeoutError(f"{function_name} ran past its TimeoutSeconds")
        return {"errorType": error, "errorMessage": f"{error} (injected)", "stackTrace": []}, True
