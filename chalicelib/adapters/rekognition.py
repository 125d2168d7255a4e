"""Rekognition adapter: DetectText, IndexFaces, Create/DeleteCollection, DeleteFaces,
SearchFacesByImage, SearchFaces.

Returns domain values (TextDetection, IndexedFace, FaceSearch, FaceMatch) and raises chalicelib.domain.errors; nothing else knows
what a Rekognition response looks like.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain import keys
from chalicelib.domain.bibs import TextBox, TextDetection
from chalicelib.domain.errors import (
    CollectionNotFound,
    ImageTooLarge,
    InvalidImage,
    NoFaceInImage,
    ProvisionedThroughputExceededException,
    RekognitionUnavailable,
    ThrottlingException,
    UnsupportedImageFormat,
)
from chalicelib.domain.model import FaceBox, FaceMatch, FaceSearch, IndexedFace

log = logging.getLogger(__name__)


class Rekognition:
    """Rekognition for one stage: events' face collections are named with its `collection_prefix`."""

    def __init__(self, client: Any, collection_prefix: str) -> None:
        self._rek = client
        self._prefix = collection_prefix

    def _collection(self, org_id: str, event_id: str) -> str:
        return keys.collection_id(self._prefix, org_id, event_id)

    def detect_text(self, bucket: str, key: str) -> list[TextDetection]:
        """Return every WORD and LINE detection in an S3 image."""
        try:
            response = self._rek.detect_text(Image={"S3Object": {"Bucket": bucket, "Name": key}})
        except ClientError as exc:
            raise _translate(exc) from exc
        detections = []
        for item in response.get("TextDetections", []):
            box = item.get("Geometry", {}).get("BoundingBox")
            detections.append(
                TextDetection(
                    text=item.get("DetectedText", ""),
                    confidence=float(item.get("Confidence", 0.0)),
                    kind=item.get("Type", "WORD"),
                    box=None
                    if box is None
                    else TextBox(
                        left=float(box.get("Left", 0.0)),
                        top=float(box.get("Top", 0.0)),
                        width=float(box.get("Width", 0.0)),
                        height=float(box.get("Height", 0.0)),
                    ),
                    id=item.get("Id"),
                    parent_id=item.get("ParentId"),
                )
            )
        return detections

    def index_faces(
        self,
        org_id: str,
        event_id: str,
        bucket: str,
        key: str,
        *,
        external_image_id: str,
        max_faces: int,
        quality_filter: str,
    ) -> list[IndexedFace]:
        """Index the faces of an S3 image; return their face ids and boxes.

        Creates the collection on first use (ResourceNotFoundException) and retries once.
        """
        collection_id = self._collection(org_id, event_id)
        request = {
            "CollectionId": collection_id,
            "Image": {"S3Object": {"Bucket": bucket, "Name": key}},
            "ExternalImageId": external_image_id,
            "MaxFaces": max_faces,
            "QualityFilter": quality_filter,
            "DetectionAttributes": [],
        }
        try:
            response = self._rek.index_faces(**request)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise _translate(exc) from exc
            self.create_collection(org_id, event_id)
            try:
                response = self._rek.index_faces(**request)
            except ClientError as retry_exc:
                raise _translate(retry_exc) from retry_exc
        return [
            IndexedFace(face_id=record["Face"]["FaceId"], box=_face_box(record["Face"]))
            for record in response.get("FaceRecords", [])
        ]

    def create_collection(self, org_id: str, event_id: str) -> None:
        """Create an event's face collection; one that already exists is fine."""
        collection_id = self._collection(org_id, event_id)
        try:
            self._rek.create_collection(CollectionId=collection_id)
            log.info("created collection=%s", collection_id)
        except ClientError as exc:
            if _code(exc) != "ResourceAlreadyExistsException":
                raise _translate(exc) from exc

    def delete_faces(self, org_id: str, event_id: str, face_ids: list[str]) -> None:
        """Delete faces from an event's collection (a missing collection or face is fine)."""
        collection_id = self._collection(org_id, event_id)
        for start in range(0, len(face_ids), 4096):
            try:
                self._rek.delete_faces(CollectionId=collection_id, FaceIds=face_ids[start : start + 4096])
            except ClientError as exc:
                if _code(exc) == "ResourceNotFoundException":
                    return
                raise _translate(exc) from exc

    def delete_collection(self, org_id: str, event_id: str) -> bool:
        """Delete an event's face collection; return False if there was none."""
        collection_id = self._collection(org_id, event_id)
        try:
            self._rek.delete_collection(CollectionId=collection_id)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise _translate(exc) from exc
        log.info("deleted collection=%s", collection_id)
        return True

    def index_face_image(
        self, org_id: str, event_id: str, image: bytes, *, external_image_id: str, quality_filter: str
    ) -> list[str]:
        """Index the largest face of an image (bytes) under `external_image_id`; return its face id.

        An empty list when the image shows no usable face. Creates the collection on first use.
        """
        collection_id = self._collection(org_id, event_id)
        request = {
            "CollectionId": collection_id,
            "Image": {"Bytes": image},
            "ExternalImageId": external_image_id,
            "MaxFaces": 1,
            "QualityFilter": quality_filter,
            "DetectionAttributes": [],
        }
        # Its own call, not index_faces': scripts.policies reads the S3 access from the caller's source.
        try:
            response = self._rek.index_faces(**request)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise _translate(exc) from exc
            self.create_collection(org_id, event_id)
            try:
                response = self._rek.index_faces(**request)
            except ClientError as retry_exc:
                raise _translate(retry_exc) from retry_exc
        return [record["Face"]["FaceId"] for record in response.get("FaceRecords", [])]

    def search_faces_by_image(
        self, org_id: str, event_id: str, image: bytes, *, threshold: float, max_faces: int
    ) -> FaceSearch:
        """Return the largest face in `image` and the faces in the collection that match it.

        One call: the service itself answers InvalidParameterException when there is no face.
        Raises CollectionNotFound, NoFaceInImage, InvalidImage or a throttling error.
        """
        collection_id = self._collection(org_id, event_id)
        try:
            response = self._rek.search_faces_by_image(
                CollectionId=collection_id,
                Image={"Bytes": image},
                FaceMatchThreshold=threshold,
                MaxFaces=max_faces,
            )
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                raise CollectionNotFound(collection_id) from exc
            if _code(exc) == "InvalidParameterException":
                # What SearchFacesByImage says when it finds no face in the image.
                raise NoFaceInImage("no face found in the image") from exc
            raise _translate(exc) from exc
        searched = {
            "BoundingBox": response.get("SearchedFaceBoundingBox") or {},
            "Confidence": response.get("SearchedFaceConfidence", 0.0),
        }
        return FaceSearch(searched=_face_box(searched), matches=tuple(_face_matches(response)))

    def search_faces(
        self, org_id: str, event_id: str, face_id: str, *, threshold: float, max_faces: int
    ) -> list[FaceMatch]:
        """Return the other faces in an event's collection that match an indexed face, best first.

        A face the collection no longer holds matches nothing. Raises CollectionNotFound or a
        throttling error.
        """
        collection_id = self._collection(org_id, event_id)
        try:
            response = self._rek.search_faces(
                CollectionId=collection_id,
                FaceId=face_id,
                FaceMatchThreshold=threshold,
                MaxFaces=max_faces,
            )
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                raise CollectionNotFound(collection_id) from exc
            if _code(exc) == "InvalidParameterException":
                # What SearchFaces says for a face id the collection does not hold (deleted since).
                log.info("search faces collection=%s face=%s: no such face", collection_id, face_id)
                return []
            raise _translate(exc) from exc
        return _face_matches(response)


def _face_matches(response: dict[str, Any]) -> list[FaceMatch]:
    return [
        FaceMatch(
            face_id=match["Face"]["FaceId"],
            external_image_id=match["Face"].get("ExternalImageId"),
            similarity=float(match.get("Similarity", 0.0)),
        )
        for match in response.get("FaceMatches", [])
    ]


def _face_box(face: dict[str, Any]) -> FaceBox:
    box = face.get("BoundingBox", {})
    return FaceBox(
        left=float(box.get("Left", 0.0)),
        top=float(box.get("Top", 0.0)),
        width=float(box.get("Width", 0.0)),
        height=float(box.get("Height", 0.0)),
        confidence=float(face.get("Confidence", 0.0)),
    )


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _translate(exc: ClientError) -> Exception:
    code = _code(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    if code in ("ThrottlingException", "LimitExceededException"):
        return ThrottlingException(f"Rekognition throttled the call ({code}): {message}")
    if code == "ProvisionedThroughputExceededException":
        return ProvisionedThroughputExceededException(f"Rekognition: {message}")
    if code in ("InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"):
        return RekognitionUnavailable(f"Rekognition failed on its side ({code}): {message}")
    if code == "InvalidImageFormatException":
        return UnsupportedImageFormat(f"Rekognition cannot read the image ({code}): {message}")
    if code == "ImageTooLargeException":
        return ImageTooLarge(f"Rekognition refused the image size ({code}): {message}")
    if code == "InvalidParameterException":
        return InvalidImage(f"Rekognition rejected the image ({code}): {message}")
    return exc
