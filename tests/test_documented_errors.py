"""Error answers openapi.yaml documents for the organiser routes and the public event route, each
produced by a real request (test_openapi's last test counts every documented response).

The behaviours behind them are specified elsewhere (test_organisers.py, test_api.py); here each
documented status and code is shown to come back as documented.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import clients
from chalicelib.domain.errors import ThrottlingException
from chalicelib.services import events, organiser, uploads
from tests.support.api import Unavailable, error_code
from tests.support.organisers import bearer
from tests.support.photos import publish

ORG = "/orgs/acme/events/e1"
UNKNOWN_ID = "01JTB2Y4X0ABCDEFGHJKMNPQRS"
UPLOAD = {"files": [{"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}]}

# Each organiser route, and the service function its handler calls.
ORGANISER_ROUTES = [
    ("PUT", ORG, {"name": "City 10K", "date": "2025-05-04"}, events, "put_event"),
    ("GET", ORG, None, events, "organiser_event"),
    ("DELETE", ORG, None, organiser, "delete_event"),
    ("POST", f"{ORG}/uploads", UPLOAD, uploads, "request_uploads"),
    ("GET", f"{ORG}/uploads/{UNKNOWN_ID}", None, uploads, "upload_status"),
    ("GET", f"{ORG}/failures", None, organiser, "failures"),
    ("POST", f"{ORG}/reprocess", {"failed": True}, organiser, "reprocess"),
    ("DELETE", f"{ORG}/photos/{UNKNOWN_ID}", None, organiser, "delete_photo"),
]


@pytest.fixture
def acme(table):
    publish(table, "acme", "e1")
    return bearer(table, "acme")


def call(client, method, path, headers, body=None):
    headers = dict(headers)
    if body is not None:
        headers["Content-Type"] = "application/json"
    raw = json.dumps(body).encode() if body is not None else b""
    response = client.http.request(method, path, headers=headers, body=raw)
    return response, json.loads(response.body) if response.body else None


@pytest.mark.parametrize(("method", "path", "body", "module", "function"), ORGANISER_ROUTES)
def test_a_throttled_read_is_503_with_retry_after_on_every_organiser_route(
    client, acme, monkeypatch, method, path, body, module, function
):
    def throttled(*args, **kwargs):
        raise ThrottlingException("DynamoDB throttled the read")

    monkeypatch.setattr(module, function, throttled)
    response, answer = call(client, method, path, acme, body)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert error_code(answer) == "ThrottlingException"


@pytest.mark.parametrize(("method", "path", "body", "module", "function"), ORGANISER_ROUTES)
def test_an_unexpected_failure_is_500_without_details_on_every_organiser_route(
    client, acme, monkeypatch, method, path, body, module, function
):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(module, function, broken)
    response, answer = call(client, method, path, acme, body)
    assert response.status_code == 500 and error_code(answer) == "InternalError"
    assert "boom" not in answer["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/orgs/acme/events/-e1", None),
        ("DELETE", "/orgs/acme/events/-e1", None),
        ("GET", f"/orgs/acme/events/-e1/uploads/{UNKNOWN_ID}", None),
        ("GET", f"{ORG}/failures?limit=0", None),
        ("DELETE", f"{ORG}/photos/not-a-photo-id", None),
        ("POST", f"{ORG}/reprocess", {"failed": "yes"}),
    ],
)
def test_malformed_organiser_requests_are_400(client, acme, method, path, body):
    response, answer = call(client, method, path, acme, body)
    assert response.status_code == 400, answer
    assert error_code(answer) in ("InvalidId", "InvalidLimit", "InvalidRequest", "InvalidReprocessRequest")


def test_unknown_upload_and_unknown_event_are_404(client, acme):
    response, answer = call(client, "GET", f"{ORG}/uploads/{UNKNOWN_ID}", acme)
    assert response.status_code == 404 and error_code(answer) == "UploadNotFound"
    response, answer = call(client, "DELETE", "/orgs/acme/events/never-made", acme)
    assert response.status_code == 404 and error_code(answer) == "EventNotFound"


def test_changing_an_event_being_deleted_is_409(client, acme, table):
    table.update_event("acme", "e1", status="DELETING")
    for method, path, body in (
        ("PUT", ORG, {"name": "City 10K", "date": "2025-05-04"}),
        ("POST", f"{ORG}/reprocess", {"failed": True}),
    ):
        response, answer = call(client, method, path, acme, body)
        assert response.status_code == 409 and error_code(answer) == "EventDeleted", (method, path)


def test_the_public_event_route_answers_400_500_and_503_as_documented(client, monkeypatch):
    response, answer = call(client, "GET", "/events/acme/-e1", {})
    assert response.status_code == 400 and error_code(answer) == "InvalidId"
    monkeypatch.setattr(clients, "table", lambda: Unavailable(ThrottlingException("slow")))
    clients.event_gate.cache_clear()  # the gate holds the table it was built with
    response, answer = call(client, "GET", "/events/acme/e1", {})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    monkeypatch.setattr(clients, "table", lambda: Unavailable(RuntimeError("boom")))
    clients.event_gate.cache_clear()
    response, answer = call(client, "GET", "/events/acme/e1", {})
    assert response.status_code == 500 and "boom" not in answer["error"]["message"]
