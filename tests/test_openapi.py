"""openapi.yaml is the API contract: it is a valid OpenAPI 3.0 document, it lists exactly the
routes app.py registers, and every response the test client gets is checked against it
(tests/support/contract.py). The scenarios live with the behaviours they specify (test_api.py and
the others); this module checks the document, the checker, and that every documented response was
produced by some test.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from openapi_spec_validator import validate as validate_spec

import app as snaprace
from tests.support.contract import (
    EXERCISED,
    HTTP_METHODS,
    SPEC,
    assert_documented,
    coerce,
    deref,
    documented_responses,
    match_path,
    parameters_of,
    schema_errors,
    under_xdist,
    whole_suite_selected,
)
from tests.support.photos import publish

EVENT = "/events/acme/e1"
UNKNOWN_PHOTO_ID = "01JTB2Y4X0ABCDEFGHJKMNPQRS"


# --- the document itself ---------------------------------------------------------------------


def test_spec_is_valid_openapi_3_0():
    assert SPEC["openapi"] == "3.0.3"
    validate_spec(SPEC)


def test_every_chalice_route_is_documented_with_the_same_methods():
    registered = {
        path: sorted(method.lower() for method in methods) for path, methods in snaprace.app.routes.items()
    }
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

    for error_type, _ in snaprace._STATUS:
        for leaf in leaves(error_type):
            # The first matching entry decides, as in app._error_response.
            actual = next(s for t, s in snaprace._STATUS if issubclass(leaf, t))
            assert leaf.__name__ in codes_by_status.get(str(actual), set()), (leaf.__name__, actual)


def test_the_checker_rejects_what_the_contract_forbids():
    with pytest.raises(pytest.fail.Exception, match="does not document status 418"):
        assert_documented("GET", f"{EVENT}/photos", 418, {}, b"{}")
    with pytest.raises(pytest.fail.Exception, match=r"DELETE .* is not documented"):
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


# What the server accepts and what the spec's parameter schemas allow must agree.
PARAMETER_CASES = [
    *[
        ("org_id", "/events/{}/e1/photos", value)
        for value in ["acme", "A.b_c-9", "a" * 64, "a" * 65, "-acme", "_a", "ac me", "a#b", "é"]
    ],
    *[("event_id", "/events/acme/{}/photos", value) for value in ["e1", "9", "x" * 65, ".e1"]],
    *[
        ("photo_id", "/events/acme/e1/photos/{}", value)
        for value in [
            UNKNOWN_PHOTO_ID,
            UNKNOWN_PHOTO_ID.lower(),
            UNKNOWN_PHOTO_ID[:25],
            UNKNOWN_PHOTO_ID[:25] + "I",
            UNKNOWN_PHOTO_ID + "0",
        ]
    ],
    *[
        ("bib", "/events/acme/e1/bibs/{}/photos", value)
        for value in [
            "123",
            "123456",
            "0042",
            "A1234",
            "z999",
            " 1234 ",
            "12",
            "1234567",
            "AB123",
            "0000",
            "00000",
            "000000",
            "000",
            "12-34",
            "1 234",
            "\uff211234",
        ]
    ],
    *[
        ("handle", "/events/acme/e1/photographers/{}/photos", value)
        for value in [
            "snap.shooter",
            "@Snap.Shooter",
            " @x ",
            "@@x",
            "a@b",
            "é_ü",
            "a" * 64,
            "@" + "a" * 64,
            "@",
            "@ ",
            "a" * 65,
            "a#b",
            "a b",
            "a\\b",
            "a\tb",
        ]
    ],
    *[
        ("limit", "/events/acme/e1/photos?limit={}", value)
        for value in ["1", "100", "30", "0", "101", "-5", "ten", "1.5"]
    ],
]


def test_parameter_rules_in_the_spec_match_the_server(client, table):
    # The spec's bib pattern is what an event may admit: 1-6 digits after an optional letter.
    publish(table, "acme", "e1", bib_pattern="[A-Za-z]?[0-9]{1,6}")
    disagreements = []
    for name, template, value in PARAMETER_CASES:
        url = template.format(quote(value, safe=""))
        location = "query" if "?" in template else "path"
        schema = parameters_of(match_path(url.partition("?")[0])[0], "get")[(location, name)]["schema"]
        spec_allows = not schema_errors(coerce(value, schema), schema)
        response = client.http.get(url)
        status, body = response.status_code, json.loads(response.body)
        if spec_allows != (status != 400):
            verdict = "spec allows" if spec_allows else "spec forbids"
            disagreements.append((name, value, verdict, status, body))
    assert disagreements == []


# --- runs last (conftest): every documented response was produced by a real request -----------


def test_every_documented_response_was_exercised(request):
    if under_xdist(request.session):
        pytest.skip("a worker sees only its own modules: the controller checks every worker's at the end")
    if not whole_suite_selected(request.session) or request.session.testsfailed:
        pytest.skip("counts the responses of the whole suite: needs every test to run, and pass")
    assert documented_responses() - EXERCISED == set()
