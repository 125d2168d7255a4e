"""Create a stage's supporting AWS resources (bucket, queues, table, state machine) with boto3.

Used against moto by the tests and the sandbox, with the app's real names and key schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from chalicelib.table import table_definition
from sandbox.stage import render_definition, stage_environment

DLQ_MAX_RECEIVES = 5
UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class StageResources:
    stage: str
    region: str
    account: str
    bucket: str
    table_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    state_machine_arn: str


def bucket_name(stage: str, account: str) -> str:
    return f"snaprace-{stage}-photos-{account}"


def create_stage_resources(stage: str, *, region: str = "us-east-1", session: Any = None) -> StageResources:
    """Create (or find) every supporting resource of a stage; return their names and ARNs."""
    session = session or boto3.session.Session(region_name=region)
    env = stage_environment(stage)
    account = session.client("sts").get_caller_identity()["Account"]
    s3 = session.client("s3")
    sqs = session.client("sqs")
    ddb = session.client("dynamodb")
    sfn = session.client("stepfunctions")
    iam = session.client("iam")

    bucket = bucket_name(stage, account)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})

    dlq_url = sqs.create_queue(
        QueueName=f"{env['INGEST_QUEUE_NAME']}-dlq",
        Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=env["INGEST_QUEUE_NAME"],
        Attributes={
            "VisibilityTimeout": "180",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": DLQ_MAX_RECEIVES}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
                }
                for suffix in UPLOAD_SUFFIXES + tuple(s.upper() for s in UPLOAD_SUFFIXES)
            ]
        },
    )

    ddb.create_table(**table_definition(env["TABLE_NAME"]))

    role_arn = iam.create_role(
        RoleName=f"snaprace-{stage}-statemachine",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    machine_arn = sfn.create_state_machine(
        name=env["STATE_MACHINE_NAME"],
        definition=render_definition(stage, region, account),
        roleArn=role_arn,
        type="STANDARD",
    )["stateMachineArn"]

    return StageResources(
        stage=stage,
        region=region,
        account=account,
        bucket=bucket,
        table_name=env["TABLE_NAME"],
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        state_machine_arn=machine_arn,
    )
