"""Least privilege: each function's committed policy is the one scripts.policies derives from its code.

The derivation (scripts/policies.py) walks the call graph from each deployed function's entry point
to the adapters' boto3 calls. These tests check the committed files equal its output, that Chalice
deploys one policy file per function, that every grant is on this stage's own resources, and that
the derivation misses nothing: a botocore recorder runs every function under moto and checks that
each call it really makes was derived.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from chalice.test import Client

from chalicelib.adapters.table import INDEXES
from infra import stack
from sandbox.stage import PROJECT_DIR, stage_environment
from scripts.policies import (
    CHALICE_DIR,
    DEPLOYED_STAGES,
    NO_RESOURCE_TYPES,
    _botocore_client,
    _class_of,
    _code,
    _edges,
    derived_actions,
    derived_calls,
    entry_points,
    lambda_name,
    needed_actions,
    policy_path,
    rendered,
)

# --- the policies Chalice deploys --------------------------------------------------------------


def _deployed_functions(stage: str):
    """Chalice's own application graph for a stage: its Lambda functions and their roles."""
    from chalice.config import Config
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    import app as snaprace

    config = Config(
        chalice_stage=stage,
        user_provided_params={"chalice_app": snaprace.app, "project_dir": str(PROJECT_DIR)},
        config_from_disk=json.loads((CHALICE_DIR / "config.json").read_text()),
    )
    application = ApplicationGraphBuilder().build(config, stage)
    functions = {}

    def visit(resource):
        if isinstance(resource, models.LambdaFunction):
            functions[resource.resource_name] = resource
        for child in resource.dependencies():
            visit(child)

    for resource in application.resources:
        visit(resource)
    return functions


def _policy(stage: str, function: str) -> dict:
    return json.loads((CHALICE_DIR / stack.chalice_config(stage, function).iam_policy_file).read_text())


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _granted(policy: dict) -> set[str]:
    return {action for s in policy["Statement"] if s["Effect"] == "Allow" for action in _as_list(s["Action"])}


# --- tests -------------------------------------------------------------------------------------


def test_derivation_finds_the_calls_each_function_is_known_to_make():
    # A sanity check of the analyser on calls that are certain; the policy tests use all of it.
    api = derived_actions("api_handler")
    assert {"dynamodb:Query", "dynamodb:BatchGetItem", "rekognition:SearchFacesByImage"} <= api
    assert {"states:StartExecution", "s3:PutObjectVersionTagging"} <= derived_actions("on_upload")
    assert "s3:PutObjectTagging" in derived_actions("preprocess")
    assert "s3:GetObject" in derived_actions("detect_text")  # via Rekognition's S3Object
    assert derived_actions("record_failure") == {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert derived_actions("organiser_token") == {"dynamodb:GetItem"}
    assert {"lambda:InvokeFunction", "s3:PutObject", "dynamodb:TransactWriteItems"} <= derived_actions(
        "api_handler"
    )
    assert {"s3:ListBucket", "rekognition:DeleteCollection"} <= derived_actions("event_jobs")


# Repository methods only the token command (scripts/tokens.py) calls, with the operator's own
# credentials: no deployed function may create or revoke tokens.
OPERATOR_ONLY = {
    "chalicelib.adapters.table.PhotoTable.put_token",
    "chalicelib.adapters.table.PhotoTable.revoke_token",
}


def test_every_adapter_client_call_is_reached_by_some_function():
    # A client call no function reaches is dead code or a path the analyser cannot follow.
    code = _code()
    every_call = {
        call
        for qualified in code.functions
        if _class_of(qualified, code)
        for call in _edges(qualified, code)[1]
    }
    reached = {call for calls in derived_calls().values() for call in calls}
    assert every_call, "found no client calls at all"
    assert {call.where for call in every_call - reached} == OPERATOR_ONLY


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_autogen_policy_is_off_and_each_function_has_its_own_policy_file(stage):
    deployed = _deployed_functions(stage)
    assert set(deployed) == set(entry_points())
    for name, function in deployed.items():
        assert not stack.chalice_config(stage, name).autogen_policy
        filename = function.role.policy.filename
        assert filename.endswith(f"policy-{stage}-{name}.json"), (name, filename)
        assert function.role.role_name == f"snaprace-{stage}-{name}"


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_committed_policies_are_the_generated_ones(stage):
    # After adding an AWS call: `python -m scripts.policies` rewrites them.
    for function in entry_points():
        assert policy_path(stage, function).read_text() == rendered(stage, function), function


def test_the_sqs_trigger_is_the_function_lambdas_poller_runs_as():
    import app as snaprace

    triggered = {source.name for source in snaprace.app.event_sources if hasattr(source, "queue")}
    assert triggered == {"on_upload"}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= needed_actions("on_upload")


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_each_policy_grants_exactly_the_actions_its_function_calls(stage):
    for function in entry_points():
        needed = needed_actions(function)
        granted = _granted(_policy(stage, function))
        assert needed - granted == set(), f"{function}'s policy lacks actions its code calls"
        assert granted - needed == set(), f"{function}'s policy grants actions its code never calls"


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_no_policy_grants_a_wildcard_action(stage):
    for function in entry_points():
        for statement in _policy(stage, function)["Statement"]:
            assert statement["Effect"] == "Allow"
            assert "NotAction" not in statement and "NotResource" not in statement
            for action in _as_list(statement["Action"]):
                assert "*" not in action and "?" not in action, (function, action)


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_every_grant_is_on_this_stages_resources(stage):
    env = stage_environment(stage)
    bucket = re.escape(f"arn:aws:s3:::{stack.bucket_name(stage, '')}") + r"\*"
    objects = bucket + r"(/\*/\*/(raw|processed)/\*)?"  # objects of a folder, or the bucket to list
    allowed = {
        "dynamodb": re.escape(f"arn:aws:dynamodb:*:*:table/{env['TABLE_NAME']}")
        + f"(/index/({'|'.join(INDEXES)}))?",
        "s3": objects,
        "sqs": re.escape(f"arn:aws:sqs:*:*:{env['INGEST_QUEUE_NAME']}"),
        "states": re.escape(f"arn:aws:states:*:*:stateMachine:{env['STATE_MACHINE_NAME']}"),
        # Collections are named {stage prefix}.{len(org)}.{org}.{event}: only this stage's.
        "rekognition": re.escape(f"arn:aws:rekognition:*:*:collection/{env['COLLECTION_PREFIX']}.") + r"\*",
        "lambda": re.escape(f"arn:aws:lambda:*:*:function:{env['JOBS_FUNCTION']}"),
    }
    for function in entry_points():
        for statement in _policy(stage, function)["Statement"]:
            actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
            services = {action.split(":")[0] for action in actions}
            assert len(services) == 1, f"{function}: one service per statement keeps scoping readable"
            (service,) = services
            if resources == ["*"]:
                assert set(actions) <= NO_RESOURCE_TYPES, (function, actions)
                continue
            if service == "logs":
                group = f"/aws/lambda/{lambda_name(stage, function)}"
                pattern = re.escape(f"arn:aws:logs:*:*:log-group:{group}:*")
            else:
                pattern = allowed[service]
            for resource in resources:
                assert re.fullmatch(pattern, resource), (function, resource)
            if service == "s3":
                # The bucket name ends in the account id, which a static policy cannot know.
                own_account = {"StringEquals": {"s3:ResourceAccount": "${aws:PrincipalAccount}"}}
                assert statement["Condition"] == own_account


def test_dev_and_prod_policies_differ_only_in_the_stage_name():
    for function in entry_points():
        dev = json.dumps(_policy("dev", function))
        prod = json.dumps(_policy("prod", function))
        assert prod == dev.replace("snaprace-dev", "snaprace-prod"), function


# --- the derivation against what the code really calls -------------------------------------


class Recorder:
    """Records every botocore call the app's clients make, per deployed function."""

    def __init__(self) -> None:
        self.current = ""
        self.calls: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.collections: set[str] = set()
        self.last_photo = ""

    def __call__(self, model, params, **_):
        self.calls[self.current].add((model.service_model.service_name, model.name))
        if model.service_model.service_name == "rekognition":
            return self._rekognition(model.name, json.loads(params["body"]))  # the serialised request
        if model.service_model.service_name == "lambda":
            # Handing a job to the worker: accepted, as Lambda answers an Event invocation.
            return AWSResponse("https://lambda", 202, {}, None), {"StatusCode": 202}
        return None

    def _rekognition(self, operation: str, params: dict):
        # moto's Rekognition is canned and has no collections: answer here, as the service would.
        def ok(body):
            return AWSResponse("https://rekognition", 200, {}, None), body

        def not_found():
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "no such collection"}}
            return AWSResponse("https://rekognition", 400, {}, None), error

        if operation == "DetectText":
            return ok({"TextDetections": [{"DetectedText": "1234", "Type": "WORD", "Confidence": 99.0}]})
        if operation == "CreateCollection":
            self.collections.add(params["CollectionId"])
            return ok({"StatusCode": 200})
        needs_collection = operation in ("IndexFaces", "SearchFacesByImage")
        if needs_collection and params["CollectionId"] not in self.collections:
            return not_found()
        if operation == "IndexFaces":
            self.last_photo = params["ExternalImageId"]
            return ok({"FaceRecords": [{"Face": {"FaceId": "face-1", "ExternalImageId": self.last_photo}}]})
        if operation == "SearchFacesByImage":
            face = {"FaceId": "face-1", "ExternalImageId": self.last_photo}
            return ok({"FaceMatches": [{"Similarity": 99.0, "Face": face}]})
        if operation == "DeleteFaces":
            return ok({"DeletedFaces": params["FaceIds"]})
        if operation == "DeleteCollection":
            self.collections.discard(params["CollectionId"])
            return ok({"StatusCode": 200})
        raise AssertionError(f"the app called Rekognition {operation}, which this recorder does not answer")


def test_every_call_the_functions_make_at_run_time_was_derived(resources):
    import app as snaprace
    from chalicelib import clients
    from tests.support.aws import STAGE
    from tests.support.organisers import bearer
    from tests.support.photos import publish
    from tests.support.workflow import jpeg_bytes, sqs_event, upload

    publish(clients.table(), "acme", "city-10k")  # before recording: the API's routes need it
    headers = bearer(clients.table(), "acme")  # tokens are made by the operator's command
    recorder = Recorder()
    for service in ("s3", "rekognition", "dynamodb", "stepfunctions", "sts", "lambda"):
        # The very clients the adapters got (the pipeline's Rekognition one retries only in Step Functions).
        clients._client(service, 4).meta.events.register("before-call", recorder)
    clients._client("rekognition", clients.STEP_RETRIED).meta.events.register("before-call", recorder)
    client = Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))

    def invoke(function, event):
        recorder.current = function
        response = client.lambda_.invoke(function, event)
        recorder.current = ""
        return response.payload

    # The pipeline, step by step, as the state machine chains it.
    key = "acme/city-10k/raw/IMG_0001.JPG"
    upload(resources, key, jpeg_bytes(), {"instagram-handle": "@Snapper"})
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10)["Messages"]
    (body,) = [m["Body"] for m in messages if "s3:TestEvent" not in m["Body"]]
    invoke("on_upload", sqs_event(resources, body))
    sfn = boto3.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=resources.state_machine_arn)["executions"]
    raw = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    event = {**raw, "photo": invoke("preprocess", raw)}
    analysis = {"text": invoke("detect_text", event), "faces": invoke("index_faces", event)}
    invoke("fanout", {**event, "analysis": analysis})
    invoke("record_failure", {**raw, "error": {"Error": "CorruptImage", "Cause": "test"}})

    # The API, every route.
    recorder.current = "api_handler"
    base = "/events/acme/city-10k"
    photo_id = event["photo"]["photo_id"]
    for path in (
        f"{base}/photos",
        f"{base}/photos/{photo_id}",
        f"{base}/bibs/1234/photos",
        f"{base}/photographers/snapper/photos",
    ):
        assert client.http.get(path).status_code == 200, path
    selfie = client.http.post(
        f"{base}/selfie-search?consent=true", headers={"Content-Type": "image/jpeg"}, body=jpeg_bytes()
    )
    assert selfie.status_code == 200 and json.loads(selfie.body)["matches"]
    opt_out = client.http.post(
        f"{base}/face-opt-out?consent=true", headers={"Content-Type": "image/jpeg"}, body=jpeg_bytes()
    )
    assert opt_out.status_code == 200, opt_out.body

    # The organiser's routes, with a real token (checked by the authorizer, run in-process).
    recorder.current = "api_handler"
    org = "/orgs/acme/events/city-10k"
    event_settings = json.dumps({"name": "City 10K", "date": "2025-05-04", "published": True})
    answers = [
        client.http.put(org, headers={**headers, "Content-Type": "application/json"}, body=event_settings),
        client.http.get(org, headers=headers),
        client.http.post(
            f"{org}/uploads",
            headers={**headers, "Content-Type": "application/json"},
            body=json.dumps({"files": [{"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}]}),
        ),
        client.http.get(f"{org}/failures", headers=headers),
        client.http.post(
            f"{org}/reprocess",
            headers={**headers, "Content-Type": "application/json"},
            body=json.dumps({"photo_ids": [photo_id]}),
        ),
        client.http.delete(f"{org}/photos/{photo_id}", headers=headers),
        client.http.delete(org, headers=headers),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 202, 204, 202]

    # The functions the API and the schedule hand work to.
    recorder.current = "organiser_token"
    snaprace.organiser_token(
        {"type": "TOKEN", "authorizationToken": headers["Authorization"], "methodArn": "arn"}, None
    )
    invoke("event_jobs", {"job": "reprocess", "org_id": "acme", "event_id": "city-10k", "scope": "all"})
    invoke("event_jobs", {"job": "delete_event", "org_id": "acme", "event_id": "city-10k"})
    recorder.current = "retention"
    scheduled = {
        "version": "0",
        "id": "e",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }
    snaprace.retention(scheduled, None)
    recorder.current = ""

    for function, made in recorder.calls.items():
        assert function, f"calls outside any function: {made}"
        derived = {
            (
                _botocore_client(c.service).meta.service_model.service_name,
                _botocore_client(c.service).meta.method_to_api_mapping[c.method],
            )
            for c in derived_calls()[function]
            if c.method
            not in ("generate_presigned_url", "generate_presigned_post")  # signed locally: no call
        }
        assert made - derived == set(), f"{function} made calls the derivation missed"
    assert set(recorder.calls) == set(entry_points())
