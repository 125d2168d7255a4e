"""API Gateway's own answers (before the app runs), in the API's JSON error shape.

API Gateway answers some requests itself: no `Authorization` header on an organiser route (the
token authorizer never runs), a body over its limit, its own throttling, an unknown path. Its
bodies differ from the app's `{"error": {"code", "message"}}`. The deployment configures one
GatewayResponse per type with the body below, with the CORS headers the app's own answers carry
so a browser can read them; the sandbox's server and the test client apply the same table to
Chalice's local gateway, so every answer has the API's shape.

The prod REST API is declared by `chalice package --stage prod --merge-template infra/api-prod.json`:
that file, written from this module (`python -m scripts.api_template --write`; `make lint`
checks it), adds
the GatewayResponses and the method throttles to Chalice's `RestAPI` (AWS::Serverless::Api).
"""

from __future__ import annotations

import json
from pathlib import Path

# GatewayResponse type -> (status, error code, message), and Chalice's local exception name for it.
GATEWAY_RESPONSES: dict[str, tuple[int, str, str]] = {
    "UNAUTHORIZED": (
        401,
        "MissingToken",
        "send Authorization: Bearer <token> (create one with python -m scripts.tokens)",
    ),
    "ACCESS_DENIED": (403, "Forbidden", "this token may not do that"),
    "REQUEST_TOO_LARGE": (413, "RequestTooLarge", "the request body is over the API's limit"),
    "THROTTLED": (429, "TooManyRequests", "too many requests; retry after a pause"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "NotFound", "no such route"),
}
LOCAL_ERRORS = {"UnauthorizedException": "UNAUTHORIZED", "AccessDeniedException": "ACCESS_DENIED"}


def body(response_type: str) -> str:
    """The JSON body API Gateway answers with for a GatewayResponse type."""
    _, code, message = GATEWAY_RESPONSES[response_type]
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":"))


def local_answer(error_type: str | None) -> tuple[int, bytes] | None:
    """The (status, body) a deployed API gives for one of Chalice's local gateway errors, or None."""
    response_type = LOCAL_ERRORS.get(error_type or "")
    if response_type is None:
        return None
    return GATEWAY_RESPONSES[response_type][0], body(response_type).encode()


MERGE_TEMPLATE = Path(__file__).resolve().parent / "api-prod.json"

# Routes whose every call costs a Rekognition call: prod throttles them per method, across all
# callers, below the account's SearchFacesByImage / IndexFaces quota (5 TPS by default in most
# regions), so a flood is answered 429 by API Gateway and never reaches Lambda or Rekognition.
THROTTLED_ROUTES: dict[tuple[str, str], tuple[float, int]] = {
    ("/events/{org_id}/{event_id}/selfie-search", "POST"): (4.0, 8),  # (requests per second, burst)
    ("/events/{org_id}/{event_id}/face-opt-out", "POST"): (1.0, 2),
}


def cors_headers(allowed_origins: list[str]) -> dict[str, str]:
    """The CORS headers of a GatewayResponse, as API Gateway mapping expressions."""
    if allowed_origins == ["*"]:
        origin = "'*'"
    elif len(allowed_origins) == 1:
        origin = f"'{allowed_origins[0]}'"
    else:
        # A gateway response cannot choose among several origins: it echoes the caller's. Its body
        # holds no data, so letting any page read the error costs nothing.
        origin = "method.request.header.origin"
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "'GET,POST,OPTIONS'",
        "Access-Control-Allow-Headers": "'Content-Type'",
    }
    if allowed_origins != ["*"]:
        headers["Vary"] = "'Origin'"
    return headers


def merge_template(allowed_origins: list[str]) -> dict[str, object]:
    """The template `chalice package --merge-template` merges into Chalice's for prod."""
    responses = {}
    for response_type, (status, _, _) in GATEWAY_RESPONSES.items():
        headers = cors_headers(allowed_origins)
        if response_type == "THROTTLED":
            headers["Retry-After"] = "'1'"
        responses[response_type] = {
            "StatusCode": str(status),
            "ResponseParameters": {"Headers": headers},
            "ResponseTemplates": {"application/json": body(response_type)},
        }
    settings = [
        {
            # MethodSetting paths start with "/" and escape each "/" of the path as "~1".
            "ResourcePath": "/" + path.replace("/", "~1"),
            "HttpMethod": method,
            "ThrottlingRateLimit": rate,
            "ThrottlingBurstLimit": burst,
        }
        for (path, method), (rate, burst) in THROTTLED_ROUTES.items()
    ]
    return {
        "Resources": {"RestAPI": {"Properties": {"GatewayResponses": responses, "MethodSettings": settings}}}
    }
