"""API Gateway's own answers (before the app runs), in the API's JSON error shape.

API Gateway answers some requests itself: no `Authorization` header on an organiser route (the
token authorizer never runs), a body over its limit, its own throttling, an unknown path. Its
bodies differ from the app's `{"error": {"code", "message"}}`. The deployment configures one
GatewayResponse per type with the body below (infra/api.yaml); the sandbox's server and the test
client apply the same table to Chalice's local gateway, so every answer has the API's shape.
"""

from __future__ import annotations

import json

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
