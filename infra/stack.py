"""A stage's supporting resources as one CloudFormation stack, `snaprace-{stage}-resources`.

`infra/resources.yaml` is the single declaration. This module adds what a template file cannot
hold: statemachine.json as the state machine's definition (one copy of the ASL, shared with the
tests and the sandbox) and the parameter values, read from `.chalice/config.json` (the names the
app uses) and `infra/stages.json` (alarm address, archive and log settings). It then creates or
updates the stack and returns its outputs. The same code deploys to AWS (scripts/stack.py) and
into moto (sandbox/resources.py).

AWS calls: cloudformation CreateStack, UpdateStack, DescribeStacks, DescribeStackEvents,
DescribeStackResources, DeleteStack; and before a first creation sts GetCallerIdentity, s3
HeadBucket, dynamodb DescribeTable and logs DescribeLogGroups (names that must still be free).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

PROJECT_DIR = Path(__file__).resolve().parent.parent
TEMPLATE = PROJECT_DIR / "infra" / "resources.yaml"
STATE_MACHINE = PROJECT_DIR / "statemachine.json"
APP_NAME = "snaprace"
# The SQS-triggered function: the ingest queue's visibility timeout follows its timeout.
TRIGGER_FUNCTION = "on_upload"
# AWS's advice for an SQS event source: visibility timeout at least six times the function's.
VISIBILITY_TIMEOUT_FACTOR = 6
CAPABILITIES = ["CAPABILITY_IAM"]
TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation accepts inline; beyond that it wants S3

log = logging.getLogger(__name__)


class StackError(Exception):
    """The stack could not be deployed or deleted; the message says why and what to do."""


def stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}-resources"


def bucket_name(stage: str, account: str) -> str:
    """The photo bucket's name (the template's PhotoBucket BucketName, which tests compare)."""
    return f"{APP_NAME}-{stage}-photos-{account}"


# --- the template -----------------------------------------------------------------------------


class _TemplateLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...) in long form."""


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref" or suffix == "Condition":
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Return a YAML CloudFormation template as a dict, intrinsic functions in long form."""
    return yaml.load(path.read_text(), Loader=_TemplateLoader)


@functools.cache
def template() -> dict[str, Any]:
    """Return the template as deployed: resources.yaml with statemachine.json as the definition."""
    rendered = load_template()
    machines = [r for r in rendered["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    if len(machines) != 1:
        raise StackError(f"{TEMPLATE.name} must declare exactly one state machine, found {len(machines)}")
    # Compact, so the definition a reviewer sees in the console is the file's content verbatim
    # modulo whitespace, and the template body stays under the inline limit.
    machines[0]["Properties"]["DefinitionString"] = json.dumps(
        json.loads(STATE_MACHINE.read_text()), separators=(",", ":")
    )
    return rendered


def template_body() -> str:
    """Return the deployed template as compact JSON."""
    body = json.dumps(template(), separators=(",", ":"))
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        raise StackError(f"template body is {len(body.encode())} bytes, over CloudFormation's inline limit")
    return body


# --- parameters -------------------------------------------------------------------------------


def chalice_config(stage: str, function: str | None = None, project_dir: Path = PROJECT_DIR):
    """Return Chalice's view of a stage (and function) in .chalice/config.json."""
    from chalice.config import DEFAULT_HANDLER_NAME, Config

    from_disk = json.loads((project_dir / ".chalice" / "config.json").read_text())
    if stage not in from_disk.get("stages", {}):
        raise StackError(f"no stage {stage!r} in .chalice/config.json")
    return Config(
        chalice_stage=stage,
        function_name=function or DEFAULT_HANDLER_NAME,
        user_provided_params={"project_dir": str(project_dir)},
        config_from_disk=from_disk,
    )


def record_cdn_base_url(stage: str, stack_outputs: dict[str, str], project_dir: Path = PROJECT_DIR) -> str:
    """Write the stack's CdnBaseUrl output into the stage's CDN_BASE_URL; return the value.

    A stage without a CDN gets "" (presigned URLs). The stage's own environment in
    .chalice/config.json is rewritten only when the value changes, so `chalice deploy` hands the
    functions the distribution this stack made.
    """
    value = stack_outputs.get("CdnBaseUrl", "")
    path = project_dir / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    current = chalice_config(stage, project_dir=project_dir).environment_variables.get("CDN_BASE_URL", "")
    if current != value:
        config["stages"][stage].setdefault("environment_variables", {})["CDN_BASE_URL"] = value
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return value


def parameters(stage: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Return the stack's parameter values for a stage."""
    env = chalice_config(stage, project_dir=project_dir).environment_variables
    trigger_timeout = chalice_config(stage, TRIGGER_FUNCTION, project_dir).lambda_timeout
    settings = json.loads((project_dir / "infra" / "stages.json").read_text())
    values = {
        "Stage": stage,
        "TableName": env["TABLE_NAME"],
        "IngestQueueName": env["INGEST_QUEUE_NAME"],
        "StateMachineName": env["STATE_MACHINE_NAME"],
        "CorsAllowedOrigins": ",".join(
            origin.strip() for origin in env.get("CORS_ALLOWED_ORIGINS", "").split(",") if origin.strip()
        ),
        "IngestVisibilityTimeout": str(max(30, VISIBILITY_TIMEOUT_FACTOR * int(trigger_timeout))),
    }
    values.update({name: str(value) for name, value in settings.get(stage, {}).items()})
    unknown = set(values) - set(template()["Parameters"])
    if unknown:
        raise StackError(f"infra/stages.json sets parameters the template lacks: {sorted(unknown)}")
    return values


# --- deploy and delete ------------------------------------------------------------------------


def deploy(
    stage: str, *, session, poll_seconds: float = 5.0, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Create or update the stage's stack, wait for it to settle, and return its outputs.

    `overrides` replaces parameter values (the sandbox's moto has no CloudFront: Cdn "false").
    Raises StackError with the failed resources' reasons if CloudFormation rolls back.
    """
    cfn = session.client("cloudformation")
    name = stack_name(stage)
    request = {
        "StackName": name,
        "TemplateBody": template_body(),
        "Parameters": [
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {**parameters(stage), **(overrides or {})}.items()
        ],
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": "app", "Value": APP_NAME}, {"Key": "stage", "Value": stage}],
    }
    status = _status(cfn, name)
    if status == "ROLLBACK_COMPLETE":
        # A first creation that failed leaves an empty stack that can only be deleted.
        log.info("stack=%s deleting the failed first attempt", name)
        cfn.delete_stack(StackName=name)
        _wait(cfn, name, poll_seconds)
        status = None
    if status is None:
        _check_names_are_free(session, stage)
        log.info("stack=%s creating", name)
        cfn.create_stack(**request)
    elif status.endswith("_IN_PROGRESS"):
        raise StackError(f"stack {name} is busy ({status}); run again when it has settled")
    else:
        log.info("stack=%s updating", name)
        try:
            cfn.update_stack(**request)
        except ClientError as exc:
            # CloudFormation has no error code of its own for this: a ValidationError says it.
            if "No updates are to be performed" not in str(exc):
                raise
            log.info("stack=%s already up to date", name)
            return outputs(stage, session=session)
    final = _wait(cfn, name, poll_seconds)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackError(f"stack {name} ended {final}:\n" + "\n".join(_failures(cfn, name)))
    return outputs(stage, session=session)


def outputs(stage: str, *, session) -> dict[str, str]:
    """Return the stack's outputs by key."""
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name(stage))["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def delete(stage: str, *, session, poll_seconds: float = 5.0) -> list[str]:
    """Delete the stage's stack; return what CloudFormation keeps (its Retain resources)."""
    cfn = session.client("cloudformation")
    name = stack_name(stage)
    if _status(cfn, name) is None:
        return []
    retained = {
        logical_id
        for logical_id, resource in template()["Resources"].items()
        if resource.get("DeletionPolicy", "Delete") != "Delete"
    }
    kept = [
        f"{resource['ResourceType']} {resource['PhysicalResourceId']}"
        for resource in cfn.describe_stack_resources(StackName=name)["StackResources"]
        if resource.get("LogicalResourceId") in retained
    ]
    cfn.delete_stack(StackName=name)
    final = _wait(cfn, name, poll_seconds)
    if final not in (None, "DELETE_COMPLETE"):
        raise StackError(f"stack {name} ended {final}:\n" + "\n".join(_failures(cfn, name)))
    return kept


def _status(cfn, name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        # A missing stack is a ValidationError like any other: only the message tells.
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def _wait(cfn, name: str, poll_seconds: float) -> str | None:
    while True:
        status = _status(cfn, name)
        if status is None or not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(poll_seconds)


def _failures(cfn, name: str) -> list[str]:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return []
    return [
        f"  {event.get('LogicalResourceId', '?')}: {event.get('ResourceStatusReason', '')}"
        for event in events
        if event.get("ResourceStatus", "").endswith("_FAILED")
    ][:10]


def _check_names_are_free(session, stage: str) -> None:
    """Refuse to create the stack over named resources that exist outside it.

    The bucket and table are kept by an earlier teardown; function log groups exist if the app
    was deployed before the stack (Lambda creates them when a role may). CloudFormation would
    fail on either, minutes in.
    """
    account = session.client("sts").get_caller_identity()["Account"]
    table = parameters(stage)["TableName"]
    found = []
    try:
        session.client("s3").head_bucket(Bucket=bucket_name(stage, account))
        found.append(f"bucket {bucket_name(stage, account)}")
    except ClientError:
        pass
    try:
        session.client("dynamodb").describe_table(TableName=table)
        found.append(f"table {table}")
    except ClientError:
        pass
    names = [
        resource["Properties"]["LogGroupName"]["Fn::Sub"].replace("${Stage}", stage)
        for resource in template()["Resources"].values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    ]
    declared = {name for name in names if name.startswith("/aws/lambda/")}
    groups = session.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{APP_NAME}-{stage}")
    found += [f"log group {g['logGroupName']}" for g in groups["logGroups"] if g["logGroupName"] in declared]
    if found:
        raise StackError(
            f"{', '.join(found)} already exist outside the stack. A bucket or table kept by an earlier "
            "teardown: delete it to start empty, or bring it in with CloudFormation's resource import. "
            "A function log group: delete it (aws logs delete-log-group), the stack recreates it."
        )
