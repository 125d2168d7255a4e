"""Generate each deployed function's least-privilege IAM policy from the code that runs in it.

    python -m scripts.policies            # (re)write .chalice/policy-{stage}-{function}.json
    python -m scripts.policies --check    # exit 1 if a committed policy differs from the generated one

The actions are derived from the code, not listed by hand: from each deployed function's entry
point in app.py, a call graph through chalicelib (module functions, classes, and the methods of
the adapter a parameter is annotated with) reaches the adapters' boto3 client calls, and
chalicelib/clients.py says which service each adapter's client talks to. Each call becomes the IAM
actions it needs. Resources are this stage's own: its table, queue, state machine, log groups and
bucket folders (S3_FOLDERS says which folder each function's S3 actions touch: the call graph sees
an action, not the key it is applied to). Adding an AWS call to the code then means running this
command; tests/test_iam.py fails until the committed files match, and cross-checks the derivation
against the calls the functions really make under moto.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from chalice.constants import SQS_EVENT_SOURCE_POLICY

from infra import stack

PROJECT_DIR = Path(__file__).resolve().parent.parent
CHALICE_DIR = PROJECT_DIR / ".chalice"

DEPLOYED_STAGES = ("dev", "prod")

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
# API operations whose IAM action has another name.
IAM_NAMES = {
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "lambda:Invoke": "lambda:InvokeFunction",
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
    for path in sorted((PROJECT_DIR / "chalicelib").rglob("*.py")):
        parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
        if parts[-1] != "__init__":
            paths[".".join(parts)] = path
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
            if (
                isinstance(arg, ast.Call)
                and isinstance(arg.func, ast.Name)
                and arg.func.id == "_client"
                and isinstance(arg.args[0], ast.Constant)
            ):
                for statement in ast.walk(init):
                    if (
                        isinstance(statement, ast.Assign)
                        and isinstance(statement.value, ast.Name)
                        and statement.value.id == params[index]
                    ):
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
            if (
                target in code.trees or target in code.classes
            ):  # a chalicelib module: module.function / module.Class
                callees.update(_callable_target(f"{target}.{inner.attr}", code))
            for typed_class in typed.get(owner, ()):
                callees.update(_callable_target(f"{typed_class}.{inner.attr}", code))
        if (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and _is_self_attribute(inner.func.value)
            and inner.func.value.attr in clients
        ):
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
    if operation == "generate_presigned_post":
        operation = "put_object"  # a POST upload is authorised as s3:PutObject
    api_name = client.meta.method_to_api_mapping[operation]
    action = f"{client.meta.service_model.signing_name}:{api_name}"
    action = IAM_NAMES.get(action, action)
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
            if not (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and isinstance(decorator.func.value, ast.Name)
                and decorator.func.value.id == "app"
            ):
                continue
            kind = decorator.func.attr
            if kind in ("route", "middleware"):
                entries["api_handler"].append(f"app.{node.name}")
            elif kind in (
                "lambda_function",
                "on_sqs_message",
                "on_s3_event",
                "on_sns_message",
                "schedule",
                "authorizer",
            ):
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


# --- the policies -------------------------------------------------------------------------------

# Which bucket folders each function's S3 object actions touch ("*": every other S3 action;
# s3:ListBucket is granted on the bucket itself).
S3_FOLDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "on_upload": {"*": ("raw",)},
    "preprocess": {"s3:PutObject": ("processed",), "s3:PutObjectTagging": ("processed",), "*": ("raw",)},
    "detect_text": {"*": ("processed",)},
    "index_faces": {"*": ("processed",)},
    # Presigned GETs of processed copies, presigned POSTs of raw uploads, deleting both.
    "api_handler": {"s3:PutObject": ("raw",), "s3:DeleteObject": ("raw", "processed"), "*": ("processed",)},
    # Deleting an event: everything under its prefix.
    "event_jobs": {"*": ("raw", "processed")},
}
# Statement ids by (service, scope), so a reviewer reads what each grant is for.
_SIDS = {
    ("logs", ""): "WriteOwnLogs",
    ("sqs", ""): "ConsumeIngestQueue",
    ("dynamodb", ""): "UseTheTable",
    ("dynamodb", "indexes"): "QueryTheIndexes",
    ("states", ""): "StartIngestExecutions",
    ("rekognition", "*"): "RekognitionWithoutResources",
    ("rekognition", "collections"): "UseFaceCollections",
    ("s3", "raw"): "RawUploads",
    ("s3", "processed"): "ProcessedCopies",
    ("s3", "bucket"): "ListTheBucket",
    ("lambda", ""): "HandJobsToTheWorker",
}


class PolicyError(Exception):
    """The code calls something this generator cannot scope; the message says what to declare."""


def lambda_name(stage: str, function: str) -> str:
    """The deployed Lambda name: the API handler is `{app}-{stage}`, the others add their name."""
    prefix = f"{stack.APP_NAME}-{stage}"
    return prefix if function == "api_handler" else f"{prefix}-{function}"


def sqs_triggered() -> set[str]:
    """Functions whose decorator is @app.on_sqs_message (Lambda's poller uses their role)."""
    found = set()
    for node in _code().trees["app"].body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "on_sqs_message"
                ):
                    names = [k.value.value for k in decorator.keywords if k.arg == "name"]
                    found.add(names[0] if names else node.name)
    return found


def needed_actions(function: str) -> set[str]:
    """Every action a function's role needs: its code's calls, its logs, and its trigger's."""
    needed = derived_actions(function) | LOG_ACTIONS
    if function in sqs_triggered():
        needed |= SQS_TRIGGER_ACTIONS
    return needed


def policy(stage: str, function: str) -> dict[str, Any]:
    """Return the IAM policy document for one deployed function of a stage."""
    env = stack.chalice_config(stage, function).environment_variables
    table = f"arn:aws:dynamodb:*:*:table/{env['TABLE_NAME']}"
    bucket_objects = f"arn:aws:s3:::{stack.bucket_name(stage, '')}*/*/*/{{folder}}/*"
    grants: dict[tuple[str, str], set[str]] = defaultdict(set)
    for action in needed_actions(function):
        service = action.split(":")[0]
        if action in LOG_ACTIONS:
            grants[("logs", "")].add(action)
        elif action == "s3:ListBucket":
            grants[("s3", "bucket")].add(action)
        elif service == "s3":
            folders = S3_FOLDERS.get(function)
            if folders is None:
                raise PolicyError(f"{function} calls {action}: say which folder it touches in S3_FOLDERS")
            for folder in folders.get(action, folders["*"]):
                grants[("s3", folder)].add(action)
        elif service == "rekognition":
            grants[("rekognition", "*" if action in NO_RESOURCE_TYPES else "collections")].add(action)
        elif action == "dynamodb:Query":
            grants[("dynamodb", "")].add(action)
            grants[("dynamodb", "indexes")].add(action)
        else:
            grants[(service, "")].add(action)

    def resources(service: str, scope: str, actions: set[str]) -> list[str]:
        if service == "logs":
            return [f"arn:aws:logs:*:*:log-group:/aws/lambda/{lambda_name(stage, function)}:*"]
        if service == "sqs":
            return [f"arn:aws:sqs:*:*:{env['INGEST_QUEUE_NAME']}"]
        if service == "states":
            return [f"arn:aws:states:*:*:stateMachine:{env['STATE_MACHINE_NAME']}"]
        if service == "dynamodb":
            return [f"{table}/index/{index}" for index in _table_indexes()] if scope == "indexes" else [table]
        if service == "s3":
            if scope == "bucket":
                return [f"arn:aws:s3:::{stack.bucket_name(stage, '')}*"]
            return [bucket_objects.format(folder=scope)]
        if service == "lambda":
            return [f"arn:aws:lambda:*:*:function:{env['JOBS_FUNCTION']}"]
        if service == "rekognition":
            # Collections are {COLLECTION_PREFIX}.{len(org)}.{org}.{event}: this stage's only.
            return (
                ["*"]
                if scope == "*"
                else [f"arn:aws:rekognition:*:*:collection/{env['COLLECTION_PREFIX']}.*"]
            )
        raise PolicyError(f"{function} calls {sorted(actions)}: no resource scoping for {service} here")

    statements = []
    for (service, scope), actions in sorted(grants.items(), key=lambda item: _SIDS.get(item[0], "~")):
        statement: dict[str, Any] = {
            "Sid": _SIDS.get((service, scope), f"{service.title()}{scope.title()}"),
            "Effect": "Allow",
            "Action": sorted(actions),
            "Resource": resources(service, scope, actions),
        }
        if service == "s3":
            # The bucket name ends in the account id, which a static policy cannot know.
            statement["Condition"] = {"StringEquals": {"s3:ResourceAccount": "${aws:PrincipalAccount}"}}
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def policy_path(stage: str, function: str) -> Path:
    return CHALICE_DIR / f"policy-{stage}-{function}.json"


def rendered(stage: str, function: str) -> str:
    return json.dumps(policy(stage, function), indent=2) + "\n"


def _table_indexes() -> tuple[str, ...]:
    tree = _code().trees["chalicelib.adapters.table"]
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "INDEXES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise PolicyError("chalicelib/adapters/table.py declares no INDEXES")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.policies", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files; write nothing"
    )
    args = parser.parse_args(argv)
    stale = []
    for stage in DEPLOYED_STAGES:
        for function in sorted(entry_points()):
            path, text = policy_path(stage, function), rendered(stage, function)
            if not path.exists() or path.read_text() != text:
                stale.append(path)
                if not args.check:
                    path.write_text(text)
    verb = "differ from the code" if args.check else "written"
    for path in stale:
        print(f"{path.relative_to(PROJECT_DIR)}: {verb}")
    if not stale:
        print("every policy matches the code")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
