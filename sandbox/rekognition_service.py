"""A local Rekognition: the operations SnapRace uses, over Rekognition's own JSON protocol.

The app's unchanged boto3 Rekognition client talks to it through AWS_ENDPOINT_URL_REKOGNITION.
Requests are `POST /` with `X-Amz-Target: RekognitionService.<Operation>` and a JSON body (image
bytes base64-encoded, as botocore sends them); errors are `{"__type": code, "message": ...}` with
status 400, which botocore turns into the same ClientError codes the service raises.

Behind it: an offline OCR engine for DetectText and an offline face engine (detection plus
embeddings) for the face operations; face collections live in memory for the process's life.
Operations: DetectText, DetectFaces, IndexFaces, SearchFacesByImage, SearchFaces, CreateCollection,
DescribeCollection, DeleteCollection, ListFaces, DeleteFaces.

Quota (optional, sandbox.quota): requests per second per operation, as AWS sets Rekognition's TPS
quotas. A call past its operation's quota is answered as the service answers it: status 400,
`{"__type": "ThrottlingException", "message": "Rate exceeded"}`, which botocore raises as a
ClientError with code ThrottlingException (and its standard retry mode retries as throttling).
botocore's model marks ThrottlingException as a server fault, which the JSON protocol would send as
a 500 when no status is given; the 400 here is what AWS's front end actually sends for "Rate
exceeded", and botocore reads the code from `__type` either way. Every call is counted per
operation: answered (past the quota, whatever the answer) or throttled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from sandbox.quota import OperationLimiter, RateQuota

log = logging.getLogger(__name__)

FACE_MODEL_VERSION = "6.0"
MAX_BYTES_IMAGE = 5 * 1024 * 1024  # Rekognition's limit for Image.Bytes
MAX_S3_IMAGE = 15 * 1024 * 1024  # and for Image.S3Object
_QUALITY_ORDER = {"NONE": 0, "AUTO": 1, "LOW": 1, "MEDIUM": 2, "HIGH": 3}


class ServiceError(Exception):
    """An error the service answers with (400 unless said otherwise)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class OcrEngine(Protocol):
    def detect_text(self, image: bytes) -> dict[str, Any]: ...


class DetectedFace(Protocol):
    left: float
    top: float
    width: float
    height: float
    confidence: float
    quality: int  # 0 unusable, 1 low, 2 medium, 3 high
    embedding: tuple[float, ...]


class FaceEngine(Protocol):
    def detect(self, image: bytes) -> list[DetectedFace]: ...

    def similarity(self, a: tuple[float, ...], b: tuple[float, ...]) -> float: ...


class ImageSource(Protocol):
    def __call__(self, bucket: str, key: str, version: str | None) -> bytes: ...


@dataclass(frozen=True)
class CallCount:
    """Calls of one operation: answered (past the quota, with a result or an error) and throttled."""

    answered: int = 0
    throttled: int = 0

    @property
    def calls(self) -> int:
        return self.answered + self.throttled


@dataclass
class StoredFace:
    face_id: str
    image_id: str
    external_image_id: str | None
    box: dict[str, float]
    confidence: float
    embedding: tuple[float, ...]

    def to_face(self) -> dict[str, Any]:
        face = {
            "FaceId": self.face_id,
            "BoundingBox": self.box,
            "ImageId": self.image_id,
            "Confidence": self.confidence,
        }
        if self.external_image_id is not None:
            face["ExternalImageId"] = self.external_image_id
        return face


@dataclass
class Collection:
    collection_id: str
    arn: str
    created: datetime
    faces: dict[str, StoredFace] = field(default_factory=dict)


class LocalRekognition:
    """The service's behaviour, independent of HTTP."""

    def __init__(
        self,
        ocr: OcrEngine,
        faces: FaceEngine,
        read_s3: ImageSource,
        region: str = "us-east-1",
        *,
        quota: RateQuota | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ocr = ocr
        self._faces = faces
        self._read_s3 = read_s3
        self._region = region
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        # Two cores: one engine call at a time keeps each call fast instead of all slow.
        self._engine = threading.Semaphore(1)
        self.quota = quota
        self._limiter = OperationLimiter(quota, clock=clock) if quota is not None else None
        self._counts: dict[str, CallCount] = {}
        self._counts_lock = threading.Lock()

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            raise ServiceError("UnknownOperationException", f"operation {operation} is not supported here")
        if self._limiter is not None and not self._limiter.admit(operation):
            self._count(operation, throttled=1)
            log.debug("rekognition throttled operation=%s", operation)
            raise ServiceError("ThrottlingException", "Rate exceeded")
        try:
            return handler(params)
        finally:
            self._count(operation, answered=1)

    def call_counts(self) -> dict[str, CallCount]:
        """Calls so far per operation (a snapshot)."""
        with self._counts_lock:
            return dict(self._counts)

    def log_call_counts(self) -> None:
        """Log one line per operation called: calls answered and throttled."""
        for operation, count in sorted(self.call_counts().items()):
            log.info(
                "rekognition calls operation=%s answered=%d throttled=%d quota=%s",
                operation,
                count.answered,
                count.throttled,
                _rate_text(self.quota, operation),
            )

    def _count(self, operation: str, *, answered: int = 0, throttled: int = 0) -> None:
        with self._counts_lock:
            count = self._counts.get(operation, CallCount())
            self._counts[operation] = CallCount(count.answered + answered, count.throttled + throttled)
        if throttled and not count.throttled:
            # Once per operation: the first sign a run is quota-bound; the totals come from log_call_counts.
            log.warning(
                "rekognition quota reached operation=%s quota=%s",
                operation,
                _rate_text(self.quota, operation),
            )

    # --- text -----------------------------------------------------------------------------

    def _op_DetectText(self, params: dict[str, Any]) -> dict[str, Any]:
        image = self._image(params)
        with self._engine, _undecodable_is_invalid_format():
            return self._ocr.detect_text(image)

    # --- collections ------------------------------------------------------------------------

    def _op_CreateCollection(self, params: dict[str, Any]) -> dict[str, Any]:
        collection_id = _required(params, "CollectionId")
        with self._lock:
            if collection_id in self._collections:
                raise ServiceError(
                    "ResourceAlreadyExistsException", f"The collection id: {collection_id} already exists"
                )
            arn = f"aws:rekognition:{self._region}:000000000000:collection/{collection_id}"
            self._collections[collection_id] = Collection(collection_id, arn, datetime.now(UTC))
        return {"StatusCode": 200, "CollectionArn": arn, "FaceModelVersion": FACE_MODEL_VERSION}

    def _op_DescribeCollection(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        return {
            "FaceCount": len(collection.faces),
            "FaceModelVersion": FACE_MODEL_VERSION,
            "CollectionARN": collection.arn,
            "CreationTimestamp": collection.created.timestamp(),
            "UserCount": 0,
        }

    def _op_DeleteCollection(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        with self._lock:
            self._collections.pop(collection.collection_id, None)
        return {"StatusCode": 200}

    def _op_ListFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        limit = int(params.get("MaxResults") or 1000)
        start = int(params.get("NextToken") or 0)
        faces = sorted(collection.faces.values(), key=lambda f: f.face_id)
        page = faces[start : start + limit]
        result: dict[str, Any] = {
            "Faces": [f.to_face() for f in page],
            "FaceModelVersion": FACE_MODEL_VERSION,
        }
        if start + limit < len(faces):
            result["NextToken"] = str(start + limit)
        return result

    def _op_DeleteFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        deleted = []
        with self._lock:
            for face_id in params.get("FaceIds") or []:
                if collection.faces.pop(face_id, None) is not None:
                    deleted.append(face_id)
        return {"DeletedFaces": deleted}

    # --- faces ------------------------------------------------------------------------------

    def _op_DetectFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        faces = self._detect(self._image(params))
        return {"FaceDetails": [_face_detail(face) for face in faces]}

    def _op_IndexFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        image = self._image(params)
        max_faces = int(params.get("MaxFaces") or 100)
        quality = str(params.get("QualityFilter") or "AUTO").upper()
        minimum = _QUALITY_ORDER.get(quality)
        if minimum is None:
            raise ServiceError("InvalidParameterException", f"QualityFilter {quality} is not valid")
        image_id = str(uuid.UUID(bytes=hashlib.sha256(image).digest()[:16]))
        records, unindexed = [], []
        for face in self._detect(image):
            if face.quality < minimum:
                unindexed.append({"Reasons": ["LOW_QUALITY"], "FaceDetail": _face_detail(face)})
            elif len(records) >= max_faces:
                unindexed.append({"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": _face_detail(face)})
            else:
                stored = StoredFace(
                    face_id=str(uuid.uuid4()),
                    image_id=image_id,
                    external_image_id=params.get("ExternalImageId"),
                    box=_box(face),
                    confidence=face.confidence,
                    embedding=face.embedding,
                )
                records.append(stored)
        with self._lock:
            for stored in records:
                collection.faces[stored.face_id] = stored
        return {
            "FaceRecords": [
                {
                    "Face": stored.to_face(),
                    "FaceDetail": {"BoundingBox": stored.box, "Confidence": stored.confidence},
                }
                for stored in records
            ],
            "UnindexedFaces": unindexed,
            "FaceModelVersion": FACE_MODEL_VERSION,
        }

    def _op_SearchFacesByImage(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        faces = self._detect(self._image(params))
        if not faces:
            raise ServiceError(
                "InvalidParameterException", "There are no faces in the image. Should be at least 1."
            )
        searched = faces[0]  # the largest, as the service does
        threshold = float(params.get("FaceMatchThreshold", 80.0))
        max_faces = int(params.get("MaxFaces") or 4096)
        with self._lock:
            stored = list(collection.faces.values())
        matches = self._matches(searched.embedding, stored, threshold)
        return {
            "SearchedFaceBoundingBox": _box(searched),
            "SearchedFaceConfidence": searched.confidence,
            "FaceMatches": matches[:max_faces],
            "FaceModelVersion": FACE_MODEL_VERSION,
        }

    def _matches(self, embedding: Any, stored: list[Any], threshold: float) -> list[dict[str, Any]]:
        """The stored faces at least `threshold` similar to `embedding`, as FaceMatches, best first."""
        matches = []
        for candidate in stored:
            similarity = self._faces.similarity(embedding, candidate.embedding)
            if similarity >= threshold:
                matches.append({"Similarity": similarity, "Face": candidate.to_face()})
        return sorted(matches, key=lambda match: -match["Similarity"])

    def _op_SearchFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        # As the service: matches of an indexed face among the collection's other faces (never the
        # face itself), best first; a face id the collection does not hold is an invalid parameter.
        collection = self._collection(params)
        face_id = _required(params, "FaceId")
        threshold = float(params.get("FaceMatchThreshold", 80.0))
        max_faces = int(params.get("MaxFaces") or 4096)
        with self._lock:
            searched = collection.faces.get(face_id)
            stored = [face for face in collection.faces.values() if face.face_id != face_id]
        if searched is None:
            raise ServiceError(
                "InvalidParameterException", f"Face {face_id} does not exist in the collection"
            )
        matches = self._matches(searched.embedding, stored, threshold)
        return {
            "SearchedFaceId": face_id,
            "FaceMatches": matches[:max_faces],
            "FaceModelVersion": FACE_MODEL_VERSION,
        }

    # --- helpers ------------------------------------------------------------------------------

    def _detect(self, image: bytes) -> list[DetectedFace]:
        with self._engine, _undecodable_is_invalid_format():
            faces = self._faces.detect(image)
        return sorted(faces, key=lambda face: face.width * face.height, reverse=True)

    def _collection(self, params: dict[str, Any]) -> Collection:
        collection_id = _required(params, "CollectionId")
        with self._lock:
            collection = self._collections.get(collection_id)
        if collection is None:
            raise ServiceError(
                "ResourceNotFoundException", f"The collection id: {collection_id} does not exist"
            )
        return collection

    def _image(self, params: dict[str, Any]) -> bytes:
        image = params.get("Image") or {}
        if "Bytes" in image:
            try:
                data = base64.b64decode(image["Bytes"], validate=True)
            except (ValueError, TypeError) as exc:
                raise ServiceError("InvalidParameterException", "Image.Bytes is not base64") from exc
            limit = MAX_BYTES_IMAGE
        elif "S3Object" in image:
            s3 = image["S3Object"]
            if not s3.get("Bucket") or not s3.get("Name"):
                raise ServiceError("InvalidParameterException", "S3Object needs Bucket and Name")
            try:
                data = self._read_s3(s3["Bucket"], s3["Name"], s3.get("Version"))
            except Exception as exc:
                raise ServiceError(
                    "InvalidS3ObjectException", f"Unable to get object metadata from S3: {exc}"
                ) from exc
            limit = MAX_S3_IMAGE
        else:
            raise ServiceError("InvalidParameterException", "Image needs Bytes or S3Object")
        if len(data) > limit:
            raise ServiceError("ImageTooLargeException", f"Image size is {len(data)} bytes, over {limit}")
        if not data.startswith((b"\xff\xd8", b"\x89PNG\r\n\x1a\n")):
            raise ServiceError("InvalidImageFormatException", "Request has invalid image format")
        return data


OPERATIONS = frozenset(name[len("_op_") :] for name in vars(LocalRekognition) if name.startswith("_op_"))


def _rate_text(quota: RateQuota | None, operation: str) -> str:
    rate = quota.rate(operation) if quota is not None else None
    return "unlimited" if rate is None else f"{rate:g}/s"


@contextmanager
def _undecodable_is_invalid_format():
    # The engines raise ValueError for bytes that pass the magic-number check but do not decode.
    try:
        yield
    except ValueError as exc:
        raise ServiceError("InvalidImageFormatException", f"Request has invalid image format: {exc}") from exc


def _required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ServiceError("InvalidParameterException", f"{name} is required")
    return str(value)


def _box(face: DetectedFace) -> dict[str, float]:
    return {"Width": face.width, "Height": face.height, "Left": face.left, "Top": face.top}


def _face_detail(face: DetectedFace) -> dict[str, Any]:
    return {"BoundingBox": _box(face), "Confidence": face.confidence}


class _Handler(BaseHTTPRequestHandler):
    service: LocalRekognition  # set on the subclass made by make_server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        operation = target.split(".", 1)[-1]
        length = int(self.headers.get("Content-Length") or 0)
        try:
            params = json.loads(self.rfile.read(length) or b"{}")
            body = self.service.handle(operation, params)
            status = 200
        except ServiceError as exc:
            status, body = exc.status, {"__type": exc.code, "message": exc.message}
        except json.JSONDecodeError:
            status, body = 400, {"__type": "SerializationException", "message": "body is not JSON"}
        except Exception as exc:
            log.exception("rekognition %s failed", operation)
            status, body = 500, {"__type": "InternalServerError", "message": str(exc)}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("rekognition %s", format % args)


def make_server(service: LocalRekognition, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Return a threaded HTTP server answering Rekognition's protocol (port 0: a free port)."""
    handler = type("RekognitionHandler", (_Handler,), {"service": service})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
