"""Least privilege: each function's policy in .chalice/ grants exactly the AWS actions its code calls.

The actions are derived from the code, not listed by hand: from each deployed function's entry
point in app.py, a call graph through chalicelib (module functions, classes, and the methods of
the adapter a parameter is annotated with) reaches the adapters' boto3 client calls, and
chalicelib/clients.py says which service each adapter's client talks to. Each call becomes the IAM
actions it needs. A botocore recorder then runs every function under moto and checks that each
call it really makes was derived, so the derivation cannot quietly miss a path.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from chalice.constants import SQS_EVENT_SOURCE_POLICY
from chalice.test import Client

from infra import stack
from sandbox.stage import PROJECT_DIR, function_name, stage_environment

DEPLOYED_STAGES = ("dev", "prod")
CHALICE_DIR = PROJECT_DIR / ".chalice"

# What every function's role needs whatever its code does: Lambda writes the function's logs with
# it (the log groups themselves are declared in infra/resources.yaml, so no CreateLogGroup).
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# Lambda's SQS poller receives and deletes with the role of the function it triggers.
SQS_TRIGGER_ACTIONS = set(SQS_EVENT_SOURCE_POLICY["Action"])
# Calls that need no permission (STS documents GetCallerIdentity as always allowed).
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}
# An S3 call made with a VersionId needs the version variant of its action.
VERSION_VARIANTS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
}
# Actions that have no resource-level permissions: only these may be granted on "*".
NO_RESOURCE_TYPES = {"rekognition:DetectText", "rekognition:DetectFaces"}


# --- the code's call graph -------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCall:
    """A boto3 client call site in an adapter."""

    where: str  # module.Class.method
    service: str
    method: str
    actions: frozenset[str]


@dataclass
class Code:
    functions: dict[str, ast.AST] = field(default_factory=dict)  # "module.f" / "module.Class.m"
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)  # "module.Class"
    # module -> local name -> what it names ("chalicelib.x", "chalicelib.x.f", "app.f")
    names: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    trees: dict[str, ast.Module] = field(default_factory=dict)


def _modules() -> dict[str, ast.Module]:
    paths = {"app": PROJECT_DIR / "app.py"}
    paths.update({f"chalicelib.{p.stem}": p for p in sorted((PROJECT_DIR / "chalicelib").glob("*.py"))})
    return {module: ast.parse(path.read_text(), str(path)) for module, path in paths.items()}


@functools.cache
def _code() -> Code:
    code = Code(trees=_modules())
    for module, tree in code.trees.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                code.functions[f"{module}.{node.name}"] = node
                code.names[module][node.name] = f"{module}.{node.name}"
            elif isinstance(node, ast.ClassDef):
                code.classes[f"{module}.{node.name}"] = node
                code.names[module][node.name] = f"{module}.{node.name}"
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        code.functions[f"{module}.{node.name}.{item.name}"] = item
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chalicelib"):
                for alias in node.names:
                    code.names[module][alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return code


def _module_of(qualified: str, code: Code) -> str:
    return next(m for m in sorted(code.trees, key=len, reverse=True) if qualified.startswith(m + "."))


def _class_of(qualified: str, code: Code) -> str | None:
    owner = qualified.rsplit(".", 1)[0]
    return owner if owner in code.classes else None


def _resolve_name(module: str, name: str, code: Code) -> str | None:
    return code.names[module].get(name)


def _callable_target(target: str | None, code: Code) -> list[str]:
    """A function, or a class's constructor, as graph nodes."""
    if target in code.functions:
        return [target]
    if target in code.classes:
        return [f"{target}.__init__"] if f"{target}.__init__" in code.functions else []
    return []


def _annotated_classes(node: ast.AST, module: str, code: Code) -> dict[str, set[str]]:
    """Variable name -> the chalicelib classes its annotations name (parameters and AnnAssign)."""
    found: dict[str, set[str]] = defaultdict(set)
    for inner in ast.walk(node):
        annotated = []
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = inner.args
            every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
            annotated = [(a.arg, a.annotation) for a in every]
        elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
            annotated = [(inner.target.id, inner.annotation)]
        for name, annotation in annotated:
            for part in ast.walk(annotation) if annotation is not None else ():
                if isinstance(part, ast.Name) and _resolve_name(module, part.id, code) in code.classes:
                    found[name].add(_resolve_name(module, part.id, code))
    return found


@functools.cache
def _client_attributes() -> dict[str, dict[str, str]]:
    """Adapter class -> {attribute holding a boto3 client: service}, read from chalicelib/clients.py."""
    code = _code()
    result: dict[str, dict[str, str]] = defaultdict(dict)
    for call in ast.walk(code.trees["chalicelib.clients"]):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
            continue
        cls = _resolve_name("chalicelib.clients", call.func.id, code)
        if cls not in code.classes:
            continue
        init = code.functions[f"{cls}.__init__"]
        params = [a.arg for a in init.args.args[1:]]
        for index, arg in enumerate(call.args):
            if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "_client"
                    and isinstance(arg.args[0], ast.Constant)):
                for statement in ast.walk(init):
                    if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Name)
                            and statement.value.id == params[index]):
                        for target in statement.targets:
                            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                                result[cls][target.attr] = arg.args[0].value
    return dict(result)


def _edges(qualified: str, code: Code) -> tuple[set[str], list[ClientCall]]:
    """Functions `qualified` may call, and the boto3 client calls it makes itself."""
    node = code.functions[qualified]
    module, cls = _module_of(qualified, code), _class_of(qualified, code)
    typed = _annotated_classes(node, module, code)
    clients = _client_attributes().get(cls or "", {})
    aliases = _method_aliases(cls) if cls else {}
    # `self._sign = lru_cache(...)(self._sign_uncached)` defines an alias; it calls nothing.
    defining = {id(part) for target, part in _alias_definitions(node)}
    callees: set[str] = set()
    calls: list[ClientCall] = []
    decorators = getattr(node, "decorator_list", [])
    for inner in [*ast.walk(node), *[d for d in decorators for d in ast.walk(d)]]:
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load):
            # A call, a decorator, or a function passed along (e.g. a callback): all may run.
            callees.update(_callable_target(_resolve_name(module, inner.id, code), code))
        elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
            owner = inner.value.id
            if owner == "self" and cls and isinstance(inner.ctx, ast.Load) and id(inner) not in defining:
                # Methods, properties, and attributes that alias methods.
                for attr in {inner.attr, *aliases.get(inner.attr, ())}:
                    callees.update(_callable_target(f"{cls}.{attr}", code))
            target = _resolve_name(module, owner, code)
            if target in code.trees:  # a chalicelib module: module.function / module.Class
                callees.update(_callable_target(f"{target}.{inner.attr}", code))
            elif target in code.classes:  # Class.classmethod
                callees.update(_callable_target(f"{target}.{inner.attr}", code))
            for typed_class in typed.get(owner, ()):
                callees.update(_callable_target(f"{typed_class}.{inner.attr}", code))
        if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                and _is_self_attribute(inner.func.value) and inner.func.value.attr in clients):
            service = clients[inner.func.value.attr]
            calls.append(ClientCall(qualified, service, inner.func.attr, _actions(service, inner, node)))
    callees.discard(qualified)
    return callees, calls


def _alias_definitions(node: ast.AST):
    """(attribute, method reference) for each `self.attribute = ...self.method...` in node."""
    for assign in ast.walk(node):
        if not isinstance(assign, ast.Assign):
            continue
        for target in assign.targets:
            if _is_self_attribute(target):
                for part in ast.walk(assign.value):
                    if _is_self_attribute(part):
                        yield target.attr, part


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


@functools.cache
def _method_aliases(cls: str) -> dict[str, set[str]]:
    code = _code()
    aliases: dict[str, set[str]] = defaultdict(set)
    for item in code.classes[cls].body:
        for attribute, reference in _alias_definitions(item):
            if f"{cls}.{reference.attr}" in code.functions:
                aliases[attribute].add(reference.attr)
    return dict(aliases)


@functools.cache
def _botocore_client(service: str):
    return botocore.session.get_session().create_client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _actions(service: str, call: ast.Call, method: ast.AST) -> frozenset[str]:
    """The IAM actions one client call needs."""
    client = _botocore_client(service)
    operation = call.func.attr
    if operation == "generate_presigned_url":
        # The URL is signed with the function's credentials: it needs the presigned action.
        operation = call.args[0].value
    api_name = client.meta.method_to_api_mapping[operation]
    action = f"{client.meta.service_model.signing_name}:{api_name}"
    actions = set() if action in NO_PERMISSION_NEEDED else {action}
    source = ast.unparse(method)
    if service == "s3" and "VersionId" in source and call.func.attr != "generate_presigned_url":
        actions |= {VERSION_VARIANTS[a] for a in actions if a in VERSION_VARIANTS}
    if service == "s3" and any(keyword.arg == "Tagging" for keyword in call.keywords):
        actions.add("s3:PutObjectTagging")  # PutObject with tags needs PutObjectTagging too
    if service == "rekognition" and "S3Object" in source:
        actions.add("s3:GetObject")  # Rekognition reads the image from S3 with the caller's permissions
    return frozenset(actions)


@functools.cache
def entry_points() -> dict[str, list[str]]:
    """Deployed function name -> its entry functions in app.py, read from the decorators."""
    code = _code()
    entries: dict[str, list[str]] = defaultdict(list)
    module_level = [n for n in code.trees["app"].body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    for node in code.trees["app"].body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                    and isinstance(decorator.func.value, ast.Name) and decorator.func.value.id == "app"):
                continue
            kind = decorator.func.attr
            if kind in ("route", "middleware"):
                entries["api_handler"].append(f"app.{node.name}")
            elif kind in ("lambda_function", "on_sqs_message", "on_s3_event", "on_sns_message", "schedule"):
                names = [k.value.value for k in decorator.keywords if k.arg == "name"]
                entries[names[0] if names else node.name].append(f"app.{node.name}")
    # app.py's module-level code runs at every cold start: a pseudo-function for it.
    code.functions["app.<module>"] = ast.Module(body=module_level, type_ignores=[])
    for name in entries:
        entries[name].append("app.<module>")
    return dict(entries)


@functools.cache
def derived_calls() -> dict[str, frozenset[ClientCall]]:
    """Deployed function name -> every boto3 client call its code path can make."""
    code = _code()
    result = {}
    for function, entries in entry_points().items():
        seen, todo, calls = set(entries), list(entries), set()
        while todo:
            callees, made = _edges(todo.pop(), code)
            calls.update(made)
            for callee in callees - seen:
                seen.add(callee)
                todo.append(callee)
        result[function] = frozenset(calls)
    return result


def derived_actions(function: str) -> set[str]:
    return {action for call in derived_calls()[function] for action in call.actions}


# --- the policies Chalice deploys --------------------------------------------------------------


def _deployed_functions(stage: str):
    """Chalice's own application graph for a stage: its Lambda functions and their roles."""
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    import app as snaprace

    from chalice.config import Config

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


def _sqs_triggered() -> set[str]:
    import app as snaprace

    return {source.name for source in snaprace.app.event_sources if hasattr(source, "queue")}


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
    assert derived_actions("record_failure") == {"dynamodb:PutItem"}


def test_every_adapter_client_call_is_reached_by_some_function():
    # A client call no function reaches is dead code or a path the analyser cannot follow.
    code = _code()
    every_call = {call for qualified in code.functions if _class_of(qualified, code)
                  for call in _edges(qualified, code)[1]}
    reached = {call for calls in derived_calls().values() for call in calls}
    assert every_call, "found no client calls at all"
    assert every_call - reached == set()


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
def test_each_policy_grants_exactly_the_actions_its_function_calls(stage):
    for function in entry_points():
        needed = derived_actions(function) | LOG_ACTIONS
        if function in _sqs_triggered():
            needed |= SQS_TRIGGER_ACTIONS
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
    objects = re.escape(f"arn:aws:s3:::{stack.bucket_name(stage, '')}") + r"\*/\*/\*/(raw|processed)/\*"
    allowed = {
        "dynamodb": re.escape(f"arn:aws:dynamodb:*:*:table/{env['TABLE_NAME']}") + r"(/index/GSI[12])?",
        "s3": objects,
        "sqs": re.escape(f"arn:aws:sqs:*:*:{env['INGEST_QUEUE_NAME']}"),
        "states": re.escape(f"arn:aws:states:*:*:stateMachine:{env['STATE_MACHINE_NAME']}"),
        # Collections are named {org}-{event}, not by stage (see the deploy notes).
        "rekognition": re.escape("arn:aws:rekognition:*:*:collection/*"),
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
                group = f"/aws/lambda/{_lambda_name(stage, function)}"
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


def _lambda_name(stage: str, function: str) -> str:
    return f"snaprace-{stage}" if function == "api_handler" else function_name(stage, function)


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
        if operation == "DetectFaces":
            box = {"Left": 0.1, "Top": 0.1, "Width": 0.5, "Height": 0.5}
            return ok({"FaceDetails": [{"BoundingBox": box, "Confidence": 99.0}]})
        if operation == "SearchFacesByImage":
            face = {"FaceId": "face-1", "ExternalImageId": self.last_photo}
            return ok({"FaceMatches": [{"Similarity": 99.0, "Face": face}]})
        raise AssertionError(f"the app called Rekognition {operation}, which this recorder does not answer")


def test_every_call_the_functions_make_at_run_time_was_derived(resources):
    import app as snaprace
    from chalicelib import clients
    from tests.conftest import STAGE
    from tests.workflow_helpers import jpeg_bytes, sqs_event, upload

    recorder = Recorder()
    for service in ("s3", "rekognition", "dynamodb", "stepfunctions", "sts"):
        clients._client(service).meta.events.register("before-call", recorder)
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
    for path in (f"{base}/photos", f"{base}/photos/{photo_id}", f"{base}/bibs/1234/photos",
                 f"{base}/photographers/snapper/photos"):
        assert client.http.get(path).status_code == 200, path
    selfie = client.http.post(
        f"{base}/selfie-search", headers={"Content-Type": "image/jpeg"}, body=jpeg_bytes()
    )
    assert selfie.status_code == 200 and json.loads(selfie.body)["matches"]

    for function, made in recorder.calls.items():
        assert function, f"calls outside any function: {made}"
        derived = {(_botocore_client(c.service).meta.service_model.service_name,
                    _botocore_client(c.service).meta.method_to_api_mapping[c.method])
                   for c in derived_calls()[function] if c.method != "generate_presigned_url"}
        assert made - derived == set(), f"{function} made calls the derivation missed"
    assert set(recorder.calls) == set(entry_points())
