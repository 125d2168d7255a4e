"""SnapRace: the Chalice switchboard. Each handler unpacks its event and calls one chalicelib function."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from chalice import Chalice, Rate, Response
from chalice.app import AuthRequest, AuthResponse, CloudWatchEvent, Request, SQSEvent, SQSRecord

from chalicelib import clients
from chalicelib.config import AppSettings
from chalicelib.domain.errors import (
    CorruptImage,
    EmptyImage,
    EventDeleted,
    EventNotFound,
    FacesDisabled,
    FacesExpired,
    Forbidden,
    ImageTooLarge,
    InvalidId,
    InvalidImage,
    InvalidRequest,
    NoFaceInImage,
    NotAnS3Notification,
    PhotoNotFound,
    SelfieTooLarge,
    SnapRaceError,
    TransientError,
    Unauthenticated,
    UnsupportedImageFormat,
    UploadNotFound,
)
from chalicelib.domain.model import iso_utc
from chalicelib.services import auth, events, ingest, organiser, pipeline, runners, search, uploads, web

_settings = AppSettings.from_env()

app = Chalice(app_name="snaprace")
app.log.setLevel(_settings.log_level)
logging.getLogger("chalicelib").setLevel(_settings.log_level)

# Every type the decoder reads; the body is decoded by content whatever the header says.
SELFIE_CONTENT_TYPES = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "image/heif",
    "image/gif",
    "image/tiff",
    "application/octet-stream",
]
for _content_type in SELFIE_CONTENT_TYPES:
    if _content_type not in app.api.binary_types:
        app.api.binary_types.append(_content_type)


# --- ingest trigger: S3 upload event -> SQS -> one Step Functions execution per raw photo ------


@app.on_sqs_message(
    queue=_settings.queue_name,
    batch_size=1,
    maximum_concurrency=_settings.max_concurrency,
    name="on_upload",
)
def on_upload(event: SQSEvent) -> None:
    for record in event:
        try:
            result = ingest.ingest_message(
                record.body,
                storage=clients.storage(),
                workflow=clients.workflow(),
                table=clients.table(),
                settings=clients.settings(),
                now=time.time(),
            )
        except NotAnS3Notification as exc:
            # Retrying cannot fix a foreign message: log it and let SQS delete it.
            app.log.error("dropped message id=%s: %s", _message_id(record), exc)
            continue
        app.log.info("message id=%s %s", _message_id(record), ingest.describe(result))


# --- pipeline steps: Task states of statemachine.json --------------------------------------------


@app.lambda_function(name="preprocess")
def preprocess(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.preprocess(
        event, storage=clients.storage(), table=clients.table(), settings=clients.settings()
    )


@app.lambda_function(name="detect_text")
def detect_text(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.detect_text(
        event,
        rekognition=clients.rekognition(clients.STEP_RETRIED),
        table=clients.table(),
        settings=clients.settings(),
    )


@app.lambda_function(name="index_faces")
def index_faces(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.index_faces(
        event,
        rekognition=clients.rekognition(clients.STEP_RETRIED),
        table=clients.table(),
        settings=clients.settings(),
    )


@app.lambda_function(name="fanout")
def fanout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.fanout(event, table=clients.table(), rekognition=clients.rekognition())


@app.lambda_function(name="record_failure")
def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.record_failure(event, table=clients.table())


# --- organiser jobs: reprocess an event, delete an event, face retention -------------------------


@app.lambda_function(name="event_jobs")
def event_jobs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    continuing = organiser.run_job(
        event,
        table=clients.table(),
        workflow=clients.workflow(),
        settings=clients.settings(),
        storage=clients.storage(),
        rekognition=clients.rekognition(),
        functions=clients.functions(),
        bucket=clients.photo_bucket(),
        # Hand the rest to a fresh invocation while a minute of this one is left.
        deadline=lambda: context.get_remaining_time_in_millis() < 60_000,
    )
    return {"continuing": continuing}


@app.schedule(Rate(1, unit=Rate.DAYS), name="retention")
def retention(event: CloudWatchEvent) -> None:
    now = datetime.now(UTC)
    expired = organiser.expire_faces(
        table=clients.table(), rekognition=clients.rekognition(), today=now.date(), now=now
    )
    app.log.info("retention: face collections deleted for %d events %s", len(expired), expired)


# --- organiser API: bearer tokens checked by the authorizer, the org enforced on every route -----


@app.authorizer(ttl_seconds=_settings.token_cache_seconds, name="organiser_token")
def organiser_token(auth_request: AuthRequest) -> AuthResponse:
    # Every verdict is allowed through with its reason in the context: the route answers 401 or
    # 403 itself (auth.require), in the API's error shape.
    context = auth.verify(auth_request.token, table=clients.table())
    return AuthResponse(routes=["*"], principal_id=context.get("token_id", "anonymous"), context=context)


# --- search API ------------------------------------------------------------------------------


def api(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Decode path parameters; turn named errors into JSON errors, never a bare 500."""

    @functools.wraps(handler)
    def wrapper(**path_params: str) -> Any:
        try:
            # Chalice passes path parameters still percent-encoded (aws/chalice#511).
            return handler(**{name: unquote(value) for name, value in path_params.items()})
        except SnapRaceError as exc:
            return _error_response(exc)
        except Exception:
            app.log.exception("unhandled error path=%s", _request().path)
            return _json_error(500, "InternalError", "something went wrong on our side; try again")

    return wrapper


@app.route("/events/{org_id}/{event_id}/photos", methods=["GET"])
@api
def list_photos(org_id: str, event_id: str) -> dict[str, Any]:
    return search.gallery(org_id, event_id, **_paging(), **_reads())


@app.route("/events/{org_id}/{event_id}/photos/{photo_id}", methods=["GET"])
@api
def get_photo(org_id: str, event_id: str, photo_id: str) -> dict[str, Any]:
    return search.photo(
        org_id, event_id, photo_id, table=clients.table(), gate=clients.event_gate(), url_for=_url_for()
    )


@app.route("/events/{org_id}/{event_id}/bibs/{bib}/photos", methods=["GET"])
@api
def list_bib_photos(org_id: str, event_id: str, bib: str) -> dict[str, Any]:
    return search.bib_photos(
        org_id, event_id, bib, **_paging(), **_reads(), rekognition=clients.rekognition()
    )


@app.route("/events/{org_id}/{event_id}/runners", methods=["GET"])
@api
def list_runners(org_id: str, event_id: str) -> dict[str, Any]:
    params = _request().query_params
    name = params.get("name") if params is not None else None
    return runners.runners_named(org_id, event_id, name, table=clients.table(), gate=clients.event_gate())


@app.route("/events/{org_id}/{event_id}/photographers/{handle}/photos", methods=["GET"])
@api
def list_photographer_photos(org_id: str, event_id: str, handle: str) -> dict[str, Any]:
    return search.photographer_photos(org_id, event_id, handle, **_paging(), **_reads())


# Its own route with only binary content types: `chalice deploy` rejects a route mixing binary and
# JSON types.
@app.route("/events/{org_id}/{event_id}/selfie-search", methods=["POST"], content_types=SELFIE_CONTENT_TYPES)
@api
def selfie_search(org_id: str, event_id: str) -> dict[str, Any]:
    return search.selfie_search(
        org_id,
        event_id,
        _body(),
        consent=_query("consent"),
        rekognition=clients.rekognition(),
        table=clients.table(),
        gate=clients.event_gate(),
        url_for=_url_for(),
        settings=clients.settings(),
    )


# A runner's "remove me": their face is kept only to refuse searches for it (binary types only,
# like the selfie route).
@app.route("/events/{org_id}/{event_id}/face-opt-out", methods=["POST"], content_types=SELFIE_CONTENT_TYPES)
@api
def face_opt_out(org_id: str, event_id: str) -> dict[str, Any]:
    return search.face_opt_out(
        org_id,
        event_id,
        _body(),
        consent=_query("consent"),
        rekognition=clients.rekognition(),
        gate=clients.event_gate(),
        settings=clients.settings(),
    )


@app.route("/events/{org_id}/{event_id}", methods=["GET"])
@api
def get_event(org_id: str, event_id: str) -> dict[str, Any]:
    return events.public_event(org_id, event_id, table=clients.table(), gate=clients.event_gate())


# --- the runners' web page: HTML and its assets, served by the app itself -----------------------


def page(handler: Callable[..., str]) -> Callable[..., Response]:
    """Answer with the handler's HTML; a missing or unpublished event or bad id is the 404 page."""

    @functools.wraps(handler)
    def wrapper(**path_params: str) -> Response:
        params = {name: unquote(value) for name, value in path_params.items()}
        try:
            return _html(200, handler(**params))
        except (EventNotFound, InvalidId):
            return _html(404, web.error_page(404, root=_root()))
        except TransientError as exc:
            app.log.warning("page error path=%s: %r", _request().path, exc)
            return _html(503, web.error_page(503, root=_root()), {"Retry-After": "1"})
        except Exception:
            app.log.exception("unhandled error path=%s", _request().path)
            return _html(500, web.error_page(500, root=_root()))

    return wrapper


@app.route("/", methods=["GET"])
@page
def home() -> str:
    return web.index_page(table=clients.table(), root=_root())


@app.route("/e/{org_id}/{event_id}", methods=["GET"])
@page
def event_page(org_id: str, event_id: str) -> str:
    return web.event_page(org_id, event_id, gate=clients.event_gate(), root=_root())


@app.route("/assets/{name}", methods=["GET"])
def asset(name: str) -> Response:
    request = _request()
    params = request.query_params
    answer = web.asset_answer(
        unquote(name),
        version=params.get("v") if params is not None else None,
        if_none_match=request.headers.get("if-none-match"),
    )
    return Response(body=answer.body, status_code=answer.status, headers=dict(answer.headers))


def organisers_only(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse the request unless the authorizer's verdict allows acting for the path's org."""

    @functools.wraps(handler)
    def wrapper(**path_params: str) -> Any:
        auth.require(_request().context.get("authorizer"), path_params["org_id"])
        return handler(**path_params)

    return wrapper


@app.route("/orgs/{org_id}/events/{event_id}", methods=["PUT"], authorizer=organiser_token)
@api
@organisers_only
def put_event(org_id: str, event_id: str) -> dict[str, Any]:
    return events.put_event(
        org_id,
        event_id,
        _json_body(),
        table=clients.table(),
        now=iso_utc(datetime.now(UTC)),
        gate=clients.event_gate(),
    )


@app.route("/orgs/{org_id}/events/{event_id}", methods=["GET"], authorizer=organiser_token)
@api
@organisers_only
def get_organiser_event(org_id: str, event_id: str) -> dict[str, Any]:
    return events.organiser_event(org_id, event_id, table=clients.table())


@app.route("/orgs/{org_id}/events/{event_id}", methods=["DELETE"], authorizer=organiser_token)
@api
@organisers_only
def delete_event(org_id: str, event_id: str) -> Response:
    status = organiser.delete_event(
        org_id,
        event_id,
        table=clients.table(),
        workflow=clients.workflow(),
        settings=clients.settings(),
        functions=clients.functions(),
        clock=time.monotonic,
    )
    clients.event_gate().forget(org_id, event_id)
    return Response(body=status, status_code=202)


@app.route(
    "/orgs/{org_id}/events/{event_id}/start-list",
    methods=["PUT"],
    authorizer=organiser_token,
    content_types=["text/csv", "text/plain"],
)
@api
@organisers_only
def put_start_list(org_id: str, event_id: str) -> dict[str, Any]:
    return runners.put_start_list(
        org_id, event_id, _body(), table=clients.table(), settings=clients.settings()
    )


@app.route("/orgs/{org_id}/events/{event_id}/uploads", methods=["POST"], authorizer=organiser_token)
@api
@organisers_only
def request_uploads(org_id: str, event_id: str) -> dict[str, Any]:
    events.check_ids(org_id, event_id)
    return uploads.request_uploads(
        org_id,
        event_id,
        _json_body(),
        bucket=clients.photo_bucket(),
        table=clients.table(),
        storage=clients.storage(),
        settings=clients.settings(),
        now=datetime.now(UTC),
    )


@app.route(
    "/orgs/{org_id}/events/{event_id}/uploads/{upload_id}", methods=["GET"], authorizer=organiser_token
)
@api
@organisers_only
def get_upload(org_id: str, event_id: str, upload_id: str) -> dict[str, Any]:
    events.check_ids(org_id, event_id)
    return uploads.upload_status(org_id, event_id, upload_id, table=clients.table())


@app.route("/orgs/{org_id}/events/{event_id}/failures", methods=["GET"], authorizer=organiser_token)
@api
@organisers_only
def list_failures(org_id: str, event_id: str) -> dict[str, Any]:
    return organiser.failures(
        org_id, event_id, **_paging(), table=clients.table(), settings=clients.settings()
    )


@app.route("/orgs/{org_id}/events/{event_id}/reprocess", methods=["POST"], authorizer=organiser_token)
@api
@organisers_only
def reprocess(org_id: str, event_id: str) -> Response:
    started = organiser.reprocess(
        org_id,
        event_id,
        _json_body(),
        table=clients.table(),
        workflow=clients.workflow(),
        settings=clients.settings(),
        functions=clients.functions(),
        clock=time.monotonic,
    )
    return Response(body=started, status_code=202)


@app.route(
    "/orgs/{org_id}/events/{event_id}/photos/{photo_id}", methods=["DELETE"], authorizer=organiser_token
)
@api
@organisers_only
def delete_photo(org_id: str, event_id: str, photo_id: str) -> Response:
    organiser.delete_photo(
        org_id,
        event_id,
        photo_id,
        table=clients.table(),
        storage=clients.storage(),
        rekognition=clients.rekognition(),
    )
    return Response(body="", status_code=204)


# The browser's preflight for the selfie POST (an image/* body is not a "simple" request); it
# carries no body, so it has its own route with the default content type.
@app.route("/events/{org_id}/{event_id}/selfie-search", methods=["OPTIONS"])
@api
def selfie_search_preflight(org_id: str, event_id: str) -> Response:
    search.check_event(org_id, event_id)
    return Response(body="", status_code=204)


@app.route("/events/{org_id}/{event_id}/face-opt-out", methods=["OPTIONS"])
@api
def face_opt_out_preflight(org_id: str, event_id: str) -> Response:
    search.check_event(org_id, event_id)
    return Response(body="", status_code=204)


@app.middleware("http")
def error_envelope(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Give Chalice's own errors (415 content type, 405 method) the API's error shape."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        response.body = {"error": {"code": body["Code"], "message": body["Message"]}}
    return response


@app.middleware("http")
def cors(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Allow only the configured origins (echoed back, never `*` unless configured)."""
    response = get_response(event)
    origin = event.headers.get("origin") if event.headers else None
    allowed = _settings.cors_allowed_origins
    if origin and ("*" in allowed or origin in allowed):
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
        response.headers["Access-Control-Allow-Methods"] = "GET,POST,OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        if "*" not in allowed:
            response.headers["Vary"] = "Origin"
    return response


# HTTP status per named error, most specific first. Chosen here only.
_STATUS = (
    (SelfieTooLarge, 413),
    (ImageTooLarge, 413),
    (NoFaceInImage, 422),
    (UnsupportedImageFormat, 415),
    (CorruptImage, 400),
    (EmptyImage, 400),
    (InvalidImage, 400),
    (InvalidRequest, 400),
    (PhotoNotFound, 404),
    (EventNotFound, 404),
    (UploadNotFound, 404),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (FacesDisabled, 409),
    (EventDeleted, 409),
    (FacesExpired, 410),
    (TransientError, 503),
)


def _error_response(exc: SnapRaceError) -> Response:
    for error_type, status in _STATUS:
        if isinstance(exc, error_type):
            if status >= 500:
                app.log.warning("api error path=%s: %r", _request().path, exc)
            return _json_error(status, type(exc).__name__, str(exc))
    app.log.error("unmapped error path=%s: %r", _request().path, exc)
    return _json_error(500, "InternalError", "something went wrong on our side; try again")


def _json_error(status: int, code: str, message: str) -> Response:
    headers: dict[str, str | list[str]] = {"Retry-After": "1"} if status == 503 else {}
    return Response(body={"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _html(status: int, body: str, extra: dict[str, str] | None = None) -> Response:
    headers: dict[str, str | list[str]] = {**web.page_headers(status), **(extra or {})}
    return Response(body=body, status_code=status, headers=headers)


def _root() -> str:
    """The path the app is served under (API Gateway's stage), from the request's own path."""
    request = _request()
    route = request.path
    for name, value in (request.uri_params or {}).items():
        route = route.replace("{" + name + "}", value)
    return web.root_path(str(request.context.get("path") or ""), route)


def _paging() -> dict[str, Any]:
    params = _request().query_params
    if params is None:
        return {"limit": None, "cursor": None}
    return {"limit": params.get("limit"), "cursor": params.get("cursor")}


def _reads() -> dict[str, Any]:
    return {
        "table": clients.table(),
        "gate": clients.event_gate(),
        "url_for": _url_for(),
        "settings": clients.settings(),
    }


def _url_for() -> search.UrlFor:
    return search.url_builder(clients.settings(), clients.storage())


def _query(name: str) -> str | None:
    params = _request().query_params
    return None if params is None else params.get(name)


def _message_id(record: SQSRecord) -> str:
    return str(record.to_dict().get("messageId", "?"))


def _request() -> Request:
    request = app.current_request
    if request is None:  # only inside a route is there a request
        raise RuntimeError("no current request")
    return request


def _body() -> bytes:
    raw = _request().raw_body
    return raw if isinstance(raw, bytes) else raw.encode()


def _json_body() -> Any:
    raw = _request().raw_body
    if not raw:
        raise InvalidRequest("send a JSON body")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc
