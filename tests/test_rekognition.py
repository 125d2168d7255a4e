"""Rekognition adapter with a botocore Stubber (the shared contract with the fake: test_rekognition_contract.py)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.domain import keys
from chalicelib.domain.bibs import TextBox, TextDetection
from chalicelib.domain.errors import (
    CollectionNotFound,
    ProvisionedThroughputExceededException,
    ThrottlingException,
)
from chalicelib.domain.model import FaceBox, FaceMatch

COLLECTION = keys.collection_id("snaprace-test", "acme", "e1")

S3_IMAGE = {"S3Object": {"Bucket": "photos", "Name": "acme/e1/processed/P1.jpg"}}


def _index_request(collection=COLLECTION):
    return {
        "CollectionId": collection,
        "Image": S3_IMAGE,
        "ExternalImageId": "P1",
        "MaxFaces": 15,
        "QualityFilter": "AUTO",
        "DetectionAttributes": [],
    }


def _face_records(*face_ids):
    box = {"Left": 0.25, "Top": 0.1, "Width": 0.2, "Height": 0.3}
    return {
        "FaceRecords": [
            {"Face": {"FaceId": f, "ExternalImageId": "P1", "BoundingBox": box, "Confidence": 99.5}}
            for f in face_ids
        ]
    }


@pytest.fixture
def stubbed():
    client = boto3.client("rekognition", region_name="us-east-1")
    with Stubber(client) as stub:
        yield Rekognition(client, "snaprace-test"), stub
        stub.assert_no_pending_responses()


def index(adapter):
    return adapter.index_faces(
        "acme",
        "e1",
        "photos",
        "acme/e1/processed/P1.jpg",
        external_image_id="P1",
        max_faces=15,
        quality_filter="AUTO",
    )


def test_detect_text_returns_words_and_lines(stubbed):
    adapter, stub = stubbed
    stub.add_response(
        "detect_text",
        {
            "TextDetections": [
                {"DetectedText": "A1234 FINISH", "Type": "LINE", "Confidence": 98.5, "Id": 0},
                {"DetectedText": "A1234", "Type": "WORD", "Confidence": 97.25, "Id": 1, "ParentId": 0},
            ]
        },
        {"Image": S3_IMAGE},
    )
    assert adapter.detect_text("photos", "acme/e1/processed/P1.jpg") == [
        TextDetection("A1234 FINISH", 98.5, "LINE", id=0),
        TextDetection("A1234", 97.25, "WORD", id=1, parent_id=0),
    ]


def _box(left, top, width, height):
    corners = [(left, top), (left + width, top), (left + width, top + height), (left, top + height)]
    return {
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "Polygon": [{"X": x, "Y": y} for x, y in corners],
    }


def test_detect_text_keeps_each_detections_box_and_links(stubbed):
    adapter, stub = stubbed
    stub.add_response(
        "detect_text",
        {
            "TextDetections": [
                {
                    "DetectedText": "12 34",
                    "Type": "LINE",
                    "Id": 0,
                    "Confidence": 96.0,
                    "Geometry": _box(0.25, 0.5, 0.125, 0.0625),
                },
                {
                    "DetectedText": "12",
                    "Type": "WORD",
                    "Id": 1,
                    "ParentId": 0,
                    "Confidence": 97.0,
                    "Geometry": _box(0.25, 0.5, 0.05, 0.0625),
                },
                {
                    "DetectedText": "34",
                    "Type": "WORD",
                    "Id": 2,
                    "ParentId": 0,
                    "Confidence": 95.0,
                    "Geometry": _box(0.325, 0.5, 0.05, 0.0625),
                },
            ],
            "TextModelVersion": "3.0",
        },
        {"Image": S3_IMAGE},
    )
    assert adapter.detect_text("photos", "acme/e1/processed/P1.jpg") == [
        TextDetection("12 34", 96.0, "LINE", box=TextBox(0.25, 0.5, 0.125, 0.0625), id=0),
        TextDetection("12", 97.0, "WORD", box=TextBox(0.25, 0.5, 0.05, 0.0625), id=1, parent_id=0),
        TextDetection("34", 95.0, "WORD", box=TextBox(0.325, 0.5, 0.05, 0.0625), id=2, parent_id=0),
    ]


def test_index_faces_creates_a_missing_collection_and_retries_once(stubbed):
    adapter, stub = stubbed
    stub.add_client_error(
        "index_faces", service_error_code="ResourceNotFoundException", expected_params=_index_request()
    )
    stub.add_response("create_collection", {"StatusCode": 200}, {"CollectionId": COLLECTION})
    stub.add_response("index_faces", _face_records("f-1", "f-2"), _index_request())
    faces = index(adapter)
    assert [face.face_id for face in faces] == ["f-1", "f-2"]
    assert faces[0].box == FaceBox(0.25, 0.1, 0.2, 0.3, 99.5)


def test_collection_created_concurrently_is_fine(stubbed):
    adapter, stub = stubbed
    stub.add_client_error("index_faces", service_error_code="ResourceNotFoundException")
    stub.add_client_error("create_collection", service_error_code="ResourceAlreadyExistsException")
    stub.add_response("index_faces", _face_records("f-1"))
    assert [face.face_id for face in index(adapter)] == ["f-1"]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ThrottlingException", ThrottlingException),
        ("ProvisionedThroughputExceededException", ProvisionedThroughputExceededException),
    ],
)
def test_throttling_is_named_so_the_state_machine_can_retry_it(stubbed, code, error):
    adapter, stub = stubbed
    stub.add_client_error("detect_text", service_error_code=code)
    with pytest.raises(error):
        adapter.detect_text("photos", "acme/e1/processed/P1.jpg")


def test_search_in_a_missing_collection_is_collection_not_found(stubbed):
    adapter, stub = stubbed
    stub.add_client_error("search_faces_by_image", service_error_code="ResourceNotFoundException")
    with pytest.raises(CollectionNotFound):
        adapter.search_faces_by_image("acme", "e1", b"jpeg", threshold=85, max_faces=50)


def test_search_faces_returns_the_other_faces_of_the_same_person(stubbed):
    adapter, stub = stubbed
    expected = {"CollectionId": COLLECTION, "FaceId": "f-1", "FaceMatchThreshold": 85.0, "MaxFaces": 50}
    stub.add_response(
        "search_faces",
        {
            "SearchedFaceId": "f-1",
            "FaceMatches": [{"Similarity": 97.5, "Face": {"FaceId": "f-9", "ExternalImageId": "P9"}}],
        },
        expected,
    )
    matches = adapter.search_faces("acme", "e1", "f-1", threshold=85.0, max_faces=50)
    assert matches == [FaceMatch(face_id="f-9", external_image_id="P9", similarity=97.5)]


def test_search_faces_for_a_face_gone_matches_nothing(stubbed):
    adapter, stub = stubbed
    stub.add_client_error("search_faces", service_error_code="InvalidParameterException")
    assert adapter.search_faces("acme", "e1", "f-gone", threshold=85.0, max_faces=50) == []
    stub.add_client_error("search_faces", service_error_code="ResourceNotFoundException")
    with pytest.raises(CollectionNotFound):
        adapter.search_faces("acme", "e1", "f-1", threshold=85.0, max_faces=50)
