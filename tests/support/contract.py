"""openapi.yaml as the API contract, checked on every response the test client gets.

`ContractClient` wraps chalice.test.Client: a response whose path, method or status is not
documented, or whose body or a documented header does not match the schema, fails the test that
made the request. What was exercised is recorded, so one test can check every documented response
was produced by a real request somewhere in the suite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
import yaml
from chalice.test import Client
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from infra import gateway
from sandbox.stage import PROJECT_DIR

SPEC_PATH = PROJECT_DIR / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# jsonschema's checkers (date-time via rfc3339-validator) plus OpenAPI's (int32, byte, ...).
FORMATS = FormatChecker()
FORMATS.checkers.update(oas30_format_checker.checkers)

# (path template, method, status) of every response a test produced: see the last test.
EXERCISED: set[tuple[str, str, str]] = set()


# --- the contract checker --------------------------------------------------------------------


def deref(node: Any) -> Any:
    """Return `node` with every local `$ref` replaced by what it points to (the spec has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"only local references are supported: {ref}"
            target: Any = SPEC
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return deref(target)
        return {key: deref(value) for key, value in node.items()}
    if isinstance(node, list):
        return [deref(value) for value in node]
    return node


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Return what is wrong with `instance` under `schema` (OpenAPI 3.0 dialect, formats checked)."""
    # The components ride along for what deref cannot inline: discriminator mappings name schemas
    # by reference string.
    validator = OAS30Validator({**deref(schema), "components": SPEC["components"]}, format_checker=FORMATS)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def match_path(path: str) -> tuple[str, dict[str, str]]:
    """Return the spec's path template for a request path and its raw (still encoded) parameters.

    Like API Gateway, a template with more literal segments wins over one with more parameters.
    """
    candidates = []
    for template in SPEC["paths"]:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        found = re.fullmatch(pattern, path)
        if found:
            literals = sum(1 for segment in template.split("/") if segment and not segment.startswith("{"))
            candidates.append((literals, template, found.groupdict()))
    if not candidates:
        pytest.fail(f"no path in openapi.yaml matches {path}")
    _, template, params = max(candidates)
    return template, params


def coerce(value: str, schema: dict[str, Any]) -> Any:
    """Return a header or query string as the JSON value its schema describes (integers only)."""
    if schema.get("type") == "integer" and re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value)
    return value


def parameters_of(template: str, method: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Return the parameters of an operation by (in, name), path-level ones overridden by its own."""
    path_item = SPEC["paths"][template]
    merged = {}
    for parameter in [*path_item.get("parameters", []), *path_item[method].get("parameters", [])]:
        parameter = deref(parameter)
        merged[(parameter["in"], parameter["name"])] = parameter
    return merged


def assert_request_documented(template: str, method: str, raw_path_params: dict[str, str], query: str):
    """Fail unless the request's parameters match their schemas: what the server accepted, the spec allows."""
    documented = parameters_of(template, method)
    given = {("path", name): unquote(value) for name, value in raw_path_params.items()}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        assert len(values) == 1, f"query parameter {name} given {len(values)} times"
        given[("query", name)] = values[0]
    for key, value in given.items():
        if key not in documented:
            pytest.fail(f"{method.upper()} {template}: parameter {key[1]!r} ({key[0]}) is not documented")
        problems = schema_errors(coerce(value, documented[key]["schema"]), documented[key]["schema"])
        assert not problems, f"{key[1]}={value!r} was accepted but the spec forbids it: {problems}"
    for key, parameter in documented.items():
        assert not parameter.get("required") or key in given, f"required parameter {key[1]} missing"


def assert_documented(method: str, url: str, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """Fail unless openapi.yaml documents this response; return its decoded JSON body (or None).

    The path, method and status must be documented; each documented header must match its schema
    (and be present if required); a JSON body must match the schema of its content type, any other
    body (the web page's HTML, CSS, JavaScript) must be of a documented content type and not empty;
    a response documented without content must have no body. For a 2xx, the request's parameters
    must also match their schemas: what the server accepted, the spec must allow.
    """
    path, _, query = url.partition("?")
    template, raw_path_params = match_path(path)
    operation = SPEC["paths"][template].get(method.lower())
    if operation is None:
        pytest.fail(f"{method.upper()} {template} is not documented")
    response = operation["responses"].get(str(status))
    if response is None:
        pytest.fail(f"{method.upper()} {template} does not document status {status}: {body[:300]!r}")
    response = deref(response)

    lowered = {name.lower(): value for name, value in headers.items()}
    for name, header in response.get("headers", {}).items():
        value = lowered.get(name.lower())
        if value is None:
            assert not header.get("required"), f"{status} response lacks the required header {name}"
            continue
        problems = schema_errors(coerce(value, header["schema"]), header["schema"])
        assert not problems, f"header {name}: {value!r}: {problems}"

    if 200 <= status < 300:
        assert_request_documented(template, method.lower(), raw_path_params, query)

    content = response.get("content")
    if not content:
        assert not body, f"{status} is documented without a body, but one came back: {body[:300]!r}"
        return None
    # API Gateway answers application/json for a Lambda proxy response that names no Content-Type.
    content_type = lowered.get("content-type", "application/json").split(";")[0].strip()
    if content_type not in content:
        pytest.fail(f"{method.upper()} {template} {status}: content type {content_type} is not documented")
    if not is_json(content_type):
        # HTML, CSS and JavaScript: the documented content type is the contract; the text is checked
        # by the tests of the web page, not by a schema.
        assert body, f"{method.upper()} {template} {status}: an empty {content_type} body"
        return None
    document = json.loads(body)
    problems = schema_errors(document, content[content_type]["schema"])
    assert not problems, f"{method.upper()} {url} {status} does not match openapi.yaml:\n" + "\n".join(
        problems
    )
    return document


def is_json(content_type: str) -> bool:
    """True for application/json and the +json types: their bodies are checked against a schema."""
    return content_type == "application/json" or content_type.endswith("+json")


class ContractClient:
    """chalice.test.Client whose every HTTP response must be documented in openapi.yaml.

    `http` checks each response with `assert_documented` and records what was exercised; the
    Lambda and event clients pass through unchanged.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self.http = _CheckedHTTP(client.http)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _CheckedHTTP:
    def __init__(self, http: Any) -> None:
        self._http = http

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | str = b""):
        response = self._http.request(method.upper(), path, headers=headers or {}, body=body)
        # Chalice's local gateway answered itself (e.g. no Authorization header): the deployed API
        # answers with its configured GatewayResponse instead (infra/gateway.py).
        answer = gateway.local_answer(response.headers.get("x-amzn-ErrorType"))
        if answer is not None:
            response.status_code, response.body = answer
        raw = response.body if isinstance(response.body, bytes) else str(response.body or "").encode()
        assert_documented(method, path, response.status_code, response.headers, raw)
        EXERCISED.add((match_path(path.partition("?")[0])[0], method.lower(), str(response.status_code)))
        return response

    def get(self, path: str, **kwargs: Any):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any):
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any):
        return self.request("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any):
        return self.request("OPTIONS", path, **kwargs)


def documented_responses() -> set[tuple[str, str, str]]:
    """(path template, method, status) of every response openapi.yaml documents."""
    return {
        (template, method, status)
        for template, item in SPEC["paths"].items()
        for method in HTTP_METHODS & set(item)
        for status in item[method]["responses"]
    }


_DESELECTED: list[Any] = []


def note_deselected(items: list[Any]) -> None:
    """Remember deselected tests (conftest's pytest_deselected hook)."""
    _DESELECTED.extend(items)


# What xdist workers reported (conftest's pytest_testnodedown), on the controller.
WORKERS_REPORTED: list[bool] = []  # each worker: did it collect the whole suite
_WORKERS_EXERCISED: set[tuple[str, str, str]] = set()


def note_worker(output: dict[str, Any]) -> None:
    """Add one finished xdist worker's exercised responses (conftest's pytest_testnodedown)."""
    WORKERS_REPORTED.append(bool(output.get("whole_suite")))
    _WORKERS_EXERCISED.update(tuple(entry) for entry in output.get("exercised", []))


def missed_by_workers() -> list[tuple[str, str, str]]:
    """The documented responses no worker produced; none unless every worker ran the whole suite."""
    if not all(WORKERS_REPORTED):
        return []
    return sorted(documented_responses() - _WORKERS_EXERCISED)


def under_xdist(session: Any) -> bool:
    """True in an xdist worker: it sees only the responses of the modules it ran."""
    return getattr(session.config, "workerinput", None) is not None


def whole_suite_selected(session: Any) -> bool:
    """True when every test module was collected and no test was deselected."""
    collected = {Path(str(item.fspath)).name for item in session.items}
    every = {path.name for path in (PROJECT_DIR / "tests").glob("test_*.py")}
    return not _DESELECTED and collected == every
