"""Create a stage's supporting resources in moto exactly as the deploy path creates them.

`create_stage_resources` deploys `infra/resources.yaml` with `infra.stack.deploy`, the code that
deploys to AWS, into moto's CloudFormation (in-process under `mock_aws`, or moto's server when
AWS_ENDPOINT_URL points at it). moto 5.2's CloudFormation skips some resource types and some
properties (MOTO_SKIPS_TYPES, MOTO_NATIVE_PROPERTIES); this module then applies exactly those
parts of the same template with the API calls CloudFormation makes for them, resolving the
template's references through the stack's outputs. So the template stays the one declaration of
names, key schema, redrive policy, notifications, alarms and state machine.

One part is not applied: the bucket policy that denies requests without TLS. moto enforces a
bucket policy but ignores its conditions, so it would deny every request.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra import stack

# --- what the template declares (read from it, so the sandbox cannot drift from it) ----------

_RESOURCES = stack.load_template()["Resources"]

DLQ_MAX_RECEIVES: int = _RESOURCES["IngestQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
_NOTIFICATIONS = _RESOURCES["PhotoBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
UPLOAD_SUFFIXES: tuple[str, ...] = tuple(
    dict.fromkeys(
        rule["Value"].lower()
        for config in _NOTIFICATIONS
        for rule in config["Filter"]["S3Key"]["Rules"]
        if rule["Name"] == "suffix"
    )
)

# What moto 5.2's CloudFormation does not create from this template. Whole types are skipped with
# a warning; of the listed types' properties it applies only the native ones and drops the rest
# silently, so anything new in the template that is neither native nor translated below fails
# loudly here instead of going missing from the sandbox.
MOTO_SKIPS_TYPES = (
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::Subscription",
)
# Types moto's CloudFormation lacks that the sandbox does without: the CDN. Stacks go into moto with
# Cdn "false" (MOTO_OVERRIDES), so processed copies are served by presigned URLs, as on dev.
MOTO_LACKS_UNUSED = ("AWS::CloudFront::Distribution", "AWS::CloudFront::OriginAccessControl")
MOTO_OVERRIDES = {"Cdn": "false"}
MOTO_NATIVE_PROPERTIES = {
    "AWS::S3::Bucket": {"BucketName", "BucketEncryption", "Tags"},
    "AWS::DynamoDB::Table": {
        "TableName",
        "BillingMode",
        "AttributeDefinitions",
        "KeySchema",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "StreamSpecification",
        "Tags",
        "DeletionProtectionEnabled",
        "SSESpecification",
        "ProvisionedThroughput",
    },
    # moto's CloudFormation keeps its state machine where an executing moto (stepfunctions
    # execute_state_machine) does not look, and ignores DefinitionSubstitutions: always applied.
    "AWS::StepFunctions::StateMachine": set(),
}


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
    return stack.bucket_name(stage, account)


def create_stage_resources(stage: str, *, region: str = "us-east-1", session: Any = None) -> StageResources:
    """Deploy (or update) the stage's stack in moto, fill in what moto skips; return names and ARNs."""
    aws = _Clients(session or _session(region, _endpoint_settings()))
    with warnings.catch_warnings():
        for resource_type in MOTO_SKIPS_TYPES:
            warnings.filterwarnings("ignore", f"Tried to parse {resource_type} but", UserWarning)
        outputs = stack.deploy(stage, session=aws, poll_seconds=0.1, overrides=MOTO_OVERRIDES)
    caller = aws.client("sts").get_caller_identity()["Arn"]
    _apply_what_moto_skips(
        aws,
        _Resolver(
            parameters={**stack.parameters(stage), **MOTO_OVERRIDES},
            pseudo={
                "AWS::AccountId": caller.split(":")[4],
                "AWS::Partition": caller.split(":")[1],
                "AWS::Region": aws.region_name,
                "AWS::StackName": stack.stack_name(stage),
            },
            outputs=outputs,
        ),
    )
    return StageResources(
        stage=stage,
        region=aws.region_name,
        account=caller.split(":")[4],
        bucket=outputs["BucketName"],
        table_name=outputs["TableName"],
        queue_url=outputs["IngestQueueUrl"],
        queue_arn=outputs["IngestQueueArn"],
        dlq_url=outputs["DeadLetterQueueUrl"],
        state_machine_arn=outputs["StateMachineArn"],
    )


# --- sessions and clients ---------------------------------------------------------------------


def _endpoint_settings() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


@functools.cache
def _session(region: str, _env: tuple[tuple[str, str], ...]):
    # One session per region and AWS_* environment: a new session reloads botocore's endpoint
    # data (0.3 s), which would dominate the tests' per-test resource creation.
    return boto3.session.Session(region_name=region)


class _Clients:
    """A session whose clients are built once per call (infra.stack only calls `.client`)."""

    def __init__(self, session) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}
        self.region_name = session.region_name

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self._session.client(service)
        return self._clients[service]


# --- what moto skips, applied from the template -----------------------------------------------


class SandboxGap(Exception):
    """The template uses something moto skips and this module does not translate."""


def _apply_what_moto_skips(aws: _Clients, resolve: _Resolver) -> None:
    template = stack.template()
    for logical_id, resource in template["Resources"].items():
        if "Condition" in resource and not resolve.condition(resource["Condition"]):
            continue
        kind = resource["Type"]
        if kind not in _APPLY:
            continue
        properties = resolve(resource.get("Properties", {}))
        native = MOTO_NATIVE_PROPERTIES.get(kind)
        if native is not None:
            properties = {k: v for k, v in properties.items() if k not in native}
        _APPLY[kind](aws, logical_id, properties, resolve)


def _bucket(aws, logical_id, properties, resolve) -> None:
    s3 = aws.client("s3")
    bucket = resolve({"Ref": logical_id})
    translators = {
        "PublicAccessBlockConfiguration": lambda value: s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=value
        ),
        "OwnershipControls": lambda value: s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls=value
        ),
        "CorsConfiguration": lambda value: s3.put_bucket_cors(
            Bucket=bucket, CORSConfiguration=_s3_cors(value)
        ),
        "LifecycleConfiguration": lambda value: s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=_s3_lifecycle(value)
        ),
        "NotificationConfiguration": lambda value: s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=_s3_notifications(value)
        ),
    }
    _translate_all(logical_id, properties, translators)


def _bucket_policy(aws, logical_id, properties, resolve) -> None:
    # Not applied: moto enforces a bucket policy's statements but ignores their conditions, so
    # the template's deny-unless-TLS (aws:SecureTransport) would deny every request.
    if any(statement.get("Condition") for statement in properties["PolicyDocument"]["Statement"]):
        return
    aws.client("s3").put_bucket_policy(
        Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"])
    )


def _queue_policy(aws, logical_id, properties, resolve) -> None:
    for queue_url in properties["Queues"]:
        aws.client("sqs").set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": json.dumps(properties["PolicyDocument"])}
        )


def _table(aws, logical_id, properties, resolve) -> None:
    table = resolve({"Ref": logical_id})
    translators = {
        "PointInTimeRecoverySpecification": lambda value: aws.client("dynamodb").update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification=value
        ),
    }
    _translate_all(logical_id, properties, translators)


def _state_machine(aws, logical_id, properties, resolve) -> None:
    sfn = aws.client("stepfunctions")
    definition = properties["DefinitionString"]
    for name, value in properties.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + name + "}", value)
    request = {"definition": definition, "roleArn": properties["RoleArn"]}
    if "LoggingConfiguration" in properties:
        request["loggingConfiguration"] = _camel(properties["LoggingConfiguration"])
    arn = resolve({"Ref": logical_id})
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "StateMachineDoesNotExist":
            raise
        sfn.create_state_machine(
            name=properties["StateMachineName"],
            type=properties.get("StateMachineType", "STANDARD"),
            **request,
        )
    else:
        sfn.update_state_machine(stateMachineArn=arn, **request)


def _alarm(aws, logical_id, properties, resolve) -> None:
    aws.client("cloudwatch").put_metric_alarm(**properties)


def _subscription(aws, logical_id, properties, resolve) -> None:
    aws.client("sns").subscribe(
        TopicArn=properties["TopicArn"], Protocol=properties["Protocol"], Endpoint=properties["Endpoint"]
    )


_APPLY = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::DynamoDB::Table": _table,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::SNS::Subscription": _subscription,
}


def _translate_all(logical_id: str, properties: dict[str, Any], translators: dict[str, Any]) -> None:
    unknown = set(properties) - set(translators)
    if unknown:
        raise SandboxGap(f"moto skips {logical_id}.{sorted(unknown)}; sandbox/resources.py cannot apply it")
    for name, value in properties.items():
        translators[name](value)


# CloudFormation's S3 property shapes -> the S3 API's.


def _s3_cors(value: dict[str, Any]) -> dict[str, Any]:
    names = {"Id": "ID", "MaxAge": "MaxAgeSeconds", "ExposedHeaders": "ExposeHeaders"}
    return {"CORSRules": [{names.get(k, k): v for k, v in rule.items()} for rule in value["CorsRules"]]}


def _s3_lifecycle(value: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in value["Rules"]:
        tags, prefix = rule.get("TagFilters", []), rule.get("Prefix", "")
        if len(tags) == 1 and not prefix:
            rule_filter: dict[str, Any] = {"Tag": tags[0]}
        elif tags:
            rule_filter = {"And": {"Prefix": prefix, "Tags": tags}}
        else:
            rule_filter = {"Prefix": prefix}
        api_rule: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": rule_filter}
        if "Transitions" in rule:
            api_rule["Transitions"] = [
                {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                for t in rule["Transitions"]
            ]
        if "AbortIncompleteMultipartUpload" in rule:
            api_rule["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        rules.append(api_rule)
    return {"Rules": rules}


def _s3_notifications(value: dict[str, Any]) -> dict[str, Any]:
    if set(value) - {"QueueConfigurations"}:
        others = sorted(set(value) - {"QueueConfigurations"})
        raise SandboxGap(f"only queue notifications are translated, not {others}")
    return {
        "QueueConfigurations": [
            {
                "QueueArn": config["Queue"],
                "Events": [config["Event"]],
                "Filter": {"Key": {"FilterRules": config["Filter"]["S3Key"]["Rules"]}},
            }
            for config in value["QueueConfigurations"]
        ]
    }


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase keys -> Step Functions' camelCase API keys."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


# --- resolving the template's intrinsic functions ---------------------------------------------

_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class _Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Join and conditions for one stack.

    References to resources resolve through the stack's outputs: the output whose Value is the
    same expression (so every reference the skipped parts use needs an output in the template).
    """

    def __init__(
        self, *, parameters: dict[str, str], pseudo: dict[str, str], outputs: dict[str, str]
    ) -> None:
        template = stack.template()
        self._parameters = parameters
        self._list_parameters = {
            name for name, spec in template["Parameters"].items() if spec["Type"] == "CommaDelimitedList"
        }
        self._pseudo = pseudo
        self._by_expression = {
            _key(output["Value"]): outputs[name]
            for name, output in template.get("Outputs", {}).items()
            if name in outputs  # a conditional output (CdnBaseUrl) exists only when its condition holds
        }
        self.conditions: dict[str, Any] = template.get("Conditions", {})

    def __call__(self, node: Any) -> Any:
        value = self._resolve(node)
        return None if value is _NO_VALUE else value

    def condition(self, name: str) -> bool:
        return bool(self._resolve(self.conditions[name]))

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self._resolve(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, argument),) = node.items()
            handler = {
                "Ref": self._ref,
                "Fn::GetAtt": self._get_att,
                "Fn::Sub": self._sub,
                "Fn::If": self._if,
                "Fn::Join": lambda arg: arg[0].join(self._resolve(arg[1])),
                "Fn::Equals": lambda arg: self._resolve(arg[0]) == self._resolve(arg[1]),
                "Fn::Not": lambda arg: not self._resolve(arg[0]),
                "Fn::And": lambda arg: all(self._resolve(a) for a in arg),
                "Fn::Or": lambda arg: any(self._resolve(a) for a in arg),
                "Condition": self.condition,
            }.get(function)
            if handler is not None:
                return handler(argument)
            if function.startswith("Fn::"):
                raise SandboxGap(f"{function} is not resolved by sandbox/resources.py")
        resolved = {key: self._resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            value = self._parameters[name]
            if name in self._list_parameters:
                return value.split(",") if value else [""]
            return value
        return self._output({"Ref": name})

    def _get_att(self, argument: list[str]) -> str:
        return self._output({"Fn::GetAtt": list(argument)})

    def _output(self, expression: dict[str, Any]) -> str:
        try:
            return self._by_expression[_key(expression)]
        except KeyError:
            raise SandboxGap(f"{expression} needs an Output in infra/resources.yaml") from None

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self._resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name.split(".", 1))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition(name) else when_false)


def _key(expression: Any) -> str:
    return json.dumps(expression, sort_keys=True)


class _QuietSkips(logging.Filter):
    """Drop moto's warning for each resource type this module applies itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg == "No Moto CloudFormation support for %s"
            and record.args
            and record.args[0] in MOTO_SKIPS_TYPES
        )


_moto_log = logging.getLogger("moto")  # moto's CloudFormation parser logs under "moto"
if not any(isinstance(f, _QuietSkips) for f in _moto_log.filters):
    _moto_log.addFilter(_QuietSkips())


def _parse_json_templates_with_json() -> None:
    """Let moto parse a JSON template body with json.loads (same result, 200x faster).

    moto parses every body with PyYAML's pure-Python loader: 0.2 s for this template, once per
    test that creates resources. infra.stack sends JSON, which YAML and json.loads read alike.
    """
    from moto.cloudformation.models import Stack

    original = Stack.__dict__["parse_template"].__func__
    if getattr(original, "json_first", False):
        return

    def parse_template(template: str) -> dict[str, Any]:
        try:
            return json.loads(template)
        except ValueError:
            return original(template)

    parse_template.json_first = True  # type: ignore[attr-defined]
    Stack.parse_template = staticmethod(parse_template)


_parse_json_templates_with_json()
