"""openapi.yaml is the API contract: it is a valid OpenAPI 3.0 document, it lists exactly the
routes app.py registers, and real responses from the test client validate against it.

Every request here goes through `call`, which fails the test when the path, method or status is
not documented, or when the body or a documented header does not match the response's schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import pytest
import yaml
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec

import app as snaprace
from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.errors import (
    InvalidImage,
    ProvisionedThroughputExceededException,
    ThrottlingException,
    UnprocessedItemsError,
)
from chalicelib.model import Failure, failed_item
from chalicelib.table import Table
from sandbox.stage import stage_environment
from tests.api_helpers import make_photo, seed
from tests.conftest import STAGE

# Fixtures shared with the handler tests (pytest finds fixtures imported into a test module).
from tests.test_api import client, index_people, rekognition, selfie, table  # noqa: F401

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# jsonschema's checkers (date-time via rfc3339-validator) plus OpenAPI's (int32, byte, ...).
FORMATS = FormatChecker()
FORMATS.checkers.update(oas30_format_checker.checkers)

# (path template, method, status) of every response a test produced: see the last test.
EXERCISED: set[tuple[str, str, str]] = set()

EVENT = "/events/acme/e1"
SELFIE = f"{EVENT}/selfie-search"
UNKNOWN_PHOTO_ID = "01JTB2Y4X0ABCDEFGHJKMNPQRS"


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
    return [f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(instance)]


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
    (and be present if required); the body must match the schema of its content type, or be empty
    when none is documented. For a 2xx, the request's parameters must also match their schemas:
    what the server accepted, the spec must allow.
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
    document = json.loads(body)
    problems = schema_errors(document, content[content_type]["schema"])
    assert not problems, f"{method.upper()} {url} {status} does not match openapi.yaml:\n" + "\n".join(
        problems
    )
    return document


def call(client, method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None):
    """Make a request with the Chalice test client; return (status, JSON body) once it is documented."""
    response = client.http.request(method.upper(), url, headers=headers or {}, body=body)
    document = assert_documented(method, url, response.status_code, response.headers, response.body)
    EXERCISED.add((match_path(url.partition("?")[0])[0], method.lower(), str(response.status_code)))
    return response.status_code, document


def post_selfie(client, image: bytes, content_type: str = "image/jpeg", path: str = SELFIE):
    return call(client, "POST", path, body=image, headers={"Content-Type": content_type})


def error_code(body: dict[str, Any]) -> str:
    return body["error"]["code"]


def use_settings(monkeypatch, **changes) -> None:
    """Run the handlers with the dev stage's settings changed."""
    settings = replace(Settings.from_env(stage_environment(STAGE)), **changes)
    monkeypatch.setattr(clients, "settings", lambda: settings)


class Unavailable:
    """A table whose every read fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def query(self, **kwargs):
        raise self.error

    def get_item(self, *args, **kwargs):
        raise self.error

    def get_items(self, *args, **kwargs):
        raise self.error


# --- the document itself ---------------------------------------------------------------------


def test_spec_is_valid_openapi_3_0():
    assert SPEC["openapi"] == "3.0.3"
    validate_spec(SPEC)


def test_every_chalice_route_is_documented_with_the_same_methods():
    registered = {path: sorted(method.lower() for method in methods)
                  for path, methods in snaprace.app.routes.items()}
    documented = {path: sorted(HTTP_METHODS & set(item)) for path, item in SPEC["paths"].items()}
    assert documented == registered


def test_every_mapped_error_is_documented_under_its_status():
    """Each named error app.py maps to a status appears as a code under that status somewhere."""
    codes_by_status: dict[str, set[str]] = {}
    for item in SPEC["paths"].values():
        for method in HTTP_METHODS & set(item):
            for status, response in item[method]["responses"].items():
                schema = deref(response).get("content", {}).get("application/json", {}).get("schema", {})
                for part in schema.get("allOf", []):
                    code = part.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
                    codes_by_status.setdefault(status, set()).update(code.get("enum", ()))

    def leaves(cls):
        subclasses = cls.__subclasses__()
        return {cls} if not subclasses else set().union(*(leaves(sub) for sub in subclasses))

    for error_type, status in snaprace._STATUS:
        for leaf in leaves(error_type):
            # The first matching entry decides, as in app._error_response.
            actual = next(s for t, s in snaprace._STATUS if issubclass(leaf, t))
            assert leaf.__name__ in codes_by_status.get(str(actual), set()), (leaf.__name__, actual)


def test_the_checker_rejects_what_the_contract_forbids():
    with pytest.raises(pytest.fail.Exception, match="does not document status 418"):
        assert_documented("GET", f"{EVENT}/photos", 418, {}, b"{}")
    with pytest.raises(pytest.fail.Exception, match="DELETE .* is not documented"):
        assert_documented("DELETE", f"{EVENT}/photos", 200, {}, b"{}")
    with pytest.raises(pytest.fail.Exception, match="no path"):
        assert_documented("GET", "/events/acme", 200, {}, b"{}")
    with pytest.raises(AssertionError, match="Additional properties are not allowed"):
        assert_documented("GET", f"{EVENT}/photos", 200, {}, b'{"photos": [], "next_cursor": null, "x": 1}')
    with pytest.raises(AssertionError, match="is not a 'date-time'"):
        page = {"photos": [{**_photo_example(), "captured_at": "yesterday"}], "next_cursor": None}
        assert_documented("GET", f"{EVENT}/photos", 200, {}, json.dumps(page).encode())
    throttled = b'{"error": {"code": "ThrottlingException", "message": "m"}}'
    with pytest.raises(AssertionError, match="lacks the required header Retry-After"):
        assert_documented("GET", f"{EVENT}/photos", 503, {}, throttled)
    with pytest.raises(AssertionError, match="'InvalidBib' is not one of"):
        wrong_code = throttled.replace(b"ThrottlingException", b"InvalidBib")
        assert_documented("GET", f"{EVENT}/photos", 400, {}, wrong_code)
    with pytest.raises(AssertionError, match="limit='500' was accepted"):
        assert_documented("GET", f"{EVENT}/photos?limit=500", 200, {}, b'{"photos": [], "next_cursor": null}')


def _photo_example() -> dict[str, Any]:
    return SPEC["components"]["schemas"]["Photo"]["example"]


def test_schema_examples_match_their_schemas():
    schemas = SPEC["components"]["schemas"]
    examples = {name: schema["example"] for name, schema in schemas.items() if "example" in schema}
    assert examples
    for name, example in examples.items():
        assert not schema_errors(example, {"$ref": f"#/components/schemas/{name}"}), name


# --- listings --------------------------------------------------------------------------------


def test_gallery_pages_follow_the_contract(client, table):
    seed(table, [(make_photo("acme", "e1", n, photographer="snap.shooter"), ("1234", "0042"))
                 for n in range(3)])
    status, first = call(client, "GET", f"{EVENT}/photos?limit=2")
    assert status == 200 and len(first["photos"]) == 2 and first["next_cursor"]
    status, last = call(client, "GET", f"{EVENT}/photos?limit=2&cursor={quote(first['next_cursor'])}")
    assert status == 200 and len(last["photos"]) == 1 and last["next_cursor"] is None


def test_unknown_event_is_an_empty_page(client):
    status, body = call(client, "GET", "/events/acme/never-happened/photos")
    assert (status, body) == (200, {"photos": [], "next_cursor": None})


def test_bib_page_follows_the_contract(client, table):
    seed(table, [(make_photo("acme", "e1", 1), ("1234",)), (make_photo("acme", "e1", 2), ("1234",))])
    status, body = call(client, "GET", f"{EVENT}/bibs/%20a1234%20/photos?limit=1")
    assert status == 200 and body["bib"] == "1234" and body["next_cursor"]


def test_photographer_page_follows_the_contract(client, table):
    seed(table, [(make_photo("acme", "e1", 1, photographer="snap.shooter"), ())])
    status, body = call(client, "GET", f"{EVENT}/photographers/%40Snap.Shooter/photos")
    assert status == 200 and body["photographer"] == "snap.shooter" and len(body["photos"]) == 1


def test_photo_without_bibs_or_photographer_follows_the_contract(client, table):
    seed(table, [(make_photo("acme", "e1", 1), ())])
    status, body = call(client, "GET", f"{EVENT}/photos")
    (photo,) = body["photos"]
    assert status == 200 and photo["bibs"] == [] and photo["photographer"] is None


def test_cdn_urls_follow_the_contract(client, table, monkeypatch):
    use_settings(monkeypatch, cdn_base_url="https://cdn.example/photos")
    seed(table, [(make_photo("acme", "e1", 1), ())])
    status, body = call(client, "GET", f"{EVENT}/photos")
    assert status == 200 and body["photos"][0]["url"].startswith("https://cdn.example/photos/")


# --- one photo -------------------------------------------------------------------------------


def test_processed_photo_follows_the_contract(client, table):
    photo = make_photo("acme", "e1", 7, photographer="p")
    seed(table, [(photo, ("0042",))])
    status, body = call(client, "GET", f"{EVENT}/photos/{photo.photo_id}")
    assert status == 200 and body["status"] == "PROCESSED"


def test_failed_photo_follows_the_contract(client, table):
    failed_id = make_photo("acme", "e1", 2).photo_id
    failure = Failure(error="CorruptImage", cause="JPEG is truncated", failed_at="2025-05-04T09:00:00Z")
    table.put_item(failed_item("acme", "e1", failed_id, "acme/e1/raw/broken.jpg", failure))
    status, body = call(client, "GET", f"{EVENT}/photos/{failed_id}")
    assert status == 200 and body["status"] == "FAILED" and body["reason"]["code"] == "CorruptImage"


def test_unknown_photo_is_a_documented_404(client):
    status, body = call(client, "GET", f"{EVENT}/photos/{UNKNOWN_PHOTO_ID}")
    assert status == 404 and error_code(body) == "PhotoNotFound"


# --- 400s ------------------------------------------------------------------------------------


BAD_REQUESTS = [
    ("/events/bad%23org/e1/photos", "InvalidId"),
    (f"/events/acme/{'x' * 65}/photos", "InvalidId"),
    (f"{EVENT}/photos/not-a-ulid", "InvalidId"),
    ("/events/-acme/e1/photos/" + UNKNOWN_PHOTO_ID, "InvalidId"),
    ("/events/acme/e%201/bibs/1234/photos", "InvalidId"),
    ("/events/acme/.e1/photographers/p/photos", "InvalidId"),
    (f"{EVENT}/bibs/12/photos", "InvalidBib"),
    (f"{EVENT}/bibs/0000/photos", "InvalidBib"),
    (f"{EVENT}/photographers/%40/photos", "InvalidHandle"),
    (f"{EVENT}/photographers/a%23b/photos", "InvalidHandle"),
    (f"{EVENT}/photos?limit=0", "InvalidLimit"),
    (f"{EVENT}/photos?limit=ten", "InvalidLimit"),
    (f"{EVENT}/bibs/1234/photos?limit=101", "InvalidLimit"),
    (f"{EVENT}/photographers/p/photos?limit=-1", "InvalidLimit"),
    (f"{EVENT}/photos?cursor=garbage", "InvalidCursor"),
    (f"{EVENT}/bibs/1234/photos?cursor=a.b", "InvalidCursor"),
    (f"{EVENT}/photographers/p/photos?cursor=a.b", "InvalidCursor"),
]


def test_bad_requests_are_documented_400s(client):
    answers = [(url, *call(client, "GET", url)) for url, _ in BAD_REQUESTS]
    assert [(url, status, error_code(body)) for url, status, body in answers] == [
        (url, 400, code) for url, code in BAD_REQUESTS
    ]


def test_cursor_from_another_listing_is_a_documented_400(client, table):
    seed(table, [(make_photo("acme", "e1", n), ("1234",)) for n in range(3)])
    cursor = call(client, "GET", f"{EVENT}/photos?limit=1")[1]["next_cursor"]
    status, body = call(client, "GET", f"{EVENT}/bibs/1234/photos?cursor={quote(cursor)}")
    assert status == 400 and error_code(body) == "InvalidCursor"


# What the server accepts and what the spec's parameter schemas allow must agree.
PARAMETER_CASES = [
    *[("org_id", "/events/{}/e1/photos", value)
      for value in ["acme", "A.b_c-9", "a" * 64, "a" * 65, "-acme", "_a", "ac me", "a#b", "é"]],
    *[("event_id", "/events/acme/{}/photos", value) for value in ["e1", "9", "x" * 65, ".e1"]],
    *[("photo_id", "/events/acme/e1/photos/{}", value)
      for value in [UNKNOWN_PHOTO_ID, UNKNOWN_PHOTO_ID.lower(), UNKNOWN_PHOTO_ID[:25],
                    UNKNOWN_PHOTO_ID[:25] + "I", UNKNOWN_PHOTO_ID + "0"]],
    *[("bib", "/events/acme/e1/bibs/{}/photos", value)
      for value in ["123", "123456", "0042", "A1234", "z999", " 1234 ", "12", "1234567", "AB123", "0000",
                    "00000", "000000", "000", "12-34", "1 234", "\uff211234"]],
    *[("handle", "/events/acme/e1/photographers/{}/photos", value)
      for value in ["snap.shooter", "@Snap.Shooter", " @x ", "@@x", "a@b", "é_ü", "a" * 64, "@" + "a" * 64,
                    "@", "@ ", "a" * 65, "a#b", "a b", "a\\b", "a\tb"]],
    *[("limit", "/events/acme/e1/photos?limit={}", value)
      for value in ["1", "100", "30", "0", "101", "-5", "ten", "1.5"]],
]


def test_parameter_rules_in_the_spec_match_the_server(client):
    disagreements = []
    for name, template, value in PARAMETER_CASES:
        url = template.format(quote(value, safe=""))
        location = "query" if "?" in template else "path"
        schema = parameters_of(match_path(url.partition("?")[0])[0], "get")[(location, name)]["schema"]
        spec_allows = not schema_errors(coerce(value, schema), schema)
        status, body = call(client, "GET", url)
        if spec_allows != (status != 400):
            verdict = "spec allows" if spec_allows else "spec forbids"
            disagreements.append((name, value, verdict, status, body))
    assert disagreements == []


# --- selfie search ---------------------------------------------------------------------------


def test_selfie_with_matches_follows_the_contract(client, table, rekognition):
    alice, bob = make_photo("acme", "e1", 1, photographer="p"), make_photo("acme", "e1", 2)
    seed(table, [(alice, ("1234",)), (bob, ())])
    index_people(rekognition, [(alice, ["alice"]), (bob, ["bob"])])
    status, body = post_selfie(client, selfie((200, 30, 30)))
    assert status == 200 and [m["photo"]["photo_id"] for m in body["matches"]] == [alice.photo_id]
    assert "note" not in body


def test_selfie_with_two_faces_has_a_note(client, table, rekognition):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    index_people(rekognition, [(photo, ["alice"])])
    status, body = post_selfie(client, selfie((30, 30, 200)))
    assert status == 200 and body["faces_in_selfie"] == 2 and body["note"]


@pytest.mark.parametrize("content_type", ["image/png", "image/webp", "application/octet-stream"])
def test_selfie_for_an_event_without_faces_has_no_matches(client, rekognition, content_type):
    image = selfie((200, 30, 30), fmt="PNG")
    status, body = post_selfie(client, image, content_type, path="/events/acme/new/selfie-search")
    assert status == 200 and body["matches"] == []


@pytest.mark.parametrize(
    "image, code",
    [(b"", "EmptyBody"), (selfie((200, 30, 30))[:200], "CorruptImage")],
)
def test_bad_selfies_are_documented_400s(client, rekognition, image, code):
    status, body = post_selfie(client, image)
    assert status == 400 and error_code(body) == code


def test_selfie_for_a_malformed_event_is_a_documented_400(client, rekognition):
    status, body = post_selfie(client, selfie((200, 30, 30)), path="/events/acme/bad%23event/selfie-search")
    assert status == 400 and error_code(body) == "InvalidId"


@pytest.mark.parametrize(
    "limits, code",
    [({"selfie_max_bytes": 1000}, "SelfieTooLarge"), ({"max_image_pixels": 10_000}, "ImageTooLarge")],
)
def test_oversized_selfies_are_documented_413s(client, rekognition, monkeypatch, limits, code):
    use_settings(monkeypatch, **limits)
    status, body = post_selfie(client, selfie((200, 30, 30), size=(400, 400)))
    assert status == 413 and error_code(body) == code


def test_selfie_that_is_not_an_image_is_a_documented_415(client, rekognition):
    status, body = post_selfie(client, b"hello, I am text")
    assert status == 415 and error_code(body) == "UnsupportedImageFormat"


def test_selfie_without_a_face_is_a_documented_422(client, rekognition):
    status, body = post_selfie(client, selfie((240, 240, 240)))
    assert status == 422 and error_code(body) == "NoFaceInImage"


def test_selfie_preflight_follows_the_contract(client):
    status, body = call(client, "OPTIONS", SELFIE, headers={"Origin": "https://app.example"})
    assert status == 204 and body is None


# --- 500 and 503 -----------------------------------------------------------------------------

EVERY_OPERATION = [
    ("GET", f"{EVENT}/photos"),
    ("GET", f"{EVENT}/photos/{UNKNOWN_PHOTO_ID}"),
    ("GET", f"{EVENT}/bibs/1234/photos"),
    ("GET", f"{EVENT}/photographers/p/photos"),
    ("POST", SELFIE),
]


def _request(client, method, url):
    if method == "POST":
        return post_selfie(client, selfie((200, 30, 30)), path=url)
    return call(client, method, url)


@pytest.mark.parametrize("error", [ThrottlingException("slow"), ProvisionedThroughputExceededException("no")])
def test_throttled_table_is_a_documented_503_on_every_operation(client, rekognition, monkeypatch, error):
    # The selfie only reads the table once Rekognition found matches.
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    monkeypatch.setattr(clients, "table", lambda: Unavailable(error))
    answers = [(method, url, *_request(client, method, url)) for method, url in EVERY_OPERATION]
    assert [(method, url, status, error_code(body)) for method, url, status, body in answers] == [
        (method, url, 503, type(error).__name__) for method, url in EVERY_OPERATION
    ]


def test_throttled_rekognition_is_a_documented_503(client, rekognition):
    rekognition.fail("detect_faces", ThrottlingException("Rekognition throttled the call"))
    status, body = post_selfie(client, selfie((200, 30, 30)))
    assert status == 503 and error_code(body) == "ThrottlingException"


def test_unprocessed_photo_lookups_are_a_documented_503(client, table, rekognition, monkeypatch):
    photo = make_photo("acme", "e1", 1)
    seed(table, [(photo, ())])
    index_people(rekognition, [(photo, ["alice"])])
    def unprocessed(self, keys):
        raise UnprocessedItemsError("BatchGetItem left keys unprocessed after every attempt")

    monkeypatch.setattr(Table, "get_items", unprocessed)
    status, body = post_selfie(client, selfie((200, 30, 30)))
    assert status == 503 and error_code(body) == "UnprocessedItemsError"


def test_unexpected_failure_is_a_documented_500_on_every_operation(client, rekognition, monkeypatch):
    index_people(rekognition, [(make_photo("acme", "e1", 1), ["alice"])])
    monkeypatch.setattr(clients, "table", lambda: Unavailable(RuntimeError("boom")))
    for method, url in EVERY_OPERATION:
        status, body = _request(client, method, url)
        assert status == 500 and error_code(body) == "InternalError", (method, url)
        assert "boom" not in body["error"]["message"]


# --- where the code and the contract disagree (see the reasons) -------------------------------


def test_selfie_rekognition_rejects_is_a_4xx(client, rekognition):
    rejected = InvalidImage("Rekognition rejected the image (InvalidImageFormatException): bad")
    rekognition.fail("detect_faces", rejected)
    status, body = post_selfie(client, selfie((200, 30, 30)))
    assert 400 <= status < 500, body


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_unlisted_selfie_content_type_gets_the_documented_error_shape(client, rekognition, content_type):
    status, body = post_selfie(client, selfie((200, 30, 30)), content_type)
    assert status == 415 and error_code(body) == "UnsupportedMediaType"


def test_gif_selfie_is_decoded(client, rekognition):
    status, body = post_selfie(client, selfie((200, 30, 30), fmt="GIF"), "image/gif")
    assert status == 200, body


# --- keep this last: every documented response was produced by a real request above ----------


def test_every_documented_response_was_exercised(request):
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    defined = {name for name, value in vars(request.module).items()
               if name.startswith("test_") and callable(value)}
    if selected != defined or request.session.testsfailed:
        pytest.skip("needs the whole module to run, and pass")
    documented = {
        (template, method, status)
        for template, item in SPEC["paths"].items()
        for method in HTTP_METHODS & set(item)
        for status in item[method]["responses"]
    }
    assert documented - EXERCISED == set()
