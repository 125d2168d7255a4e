"""The local Rekognition service speaks Rekognition's protocol to the app's own boto3 adapter."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.domain import keys
from chalicelib.domain.errors import CollectionNotFound, InvalidImage, NoFaceInImage
from sandbox.rekognition_service import LocalRekognition
from tests.support.fakes import EngineFace as Face
from tests.support.rekognition import served

COLLECTION = keys.collection_id("snaprace-test", "acme", "e1")


def png(colour, size=(120, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


class ColourFaces:
    """Each red-ish image shows one 'person' identified by its green value; blue adds a small face."""

    def detect(self, image):
        r, g, b = Image.open(io.BytesIO(image)).convert("RGB").getpixel((0, 0))
        faces = []
        if r > 100:
            faces.append(Face(0.1, 0.1, 0.4, 0.5, 99.5, 3, (float(g), 0.0)))
        if b > 100:
            faces.append(Face(0.7, 0.7, 0.1, 0.1, 90.0, 0, (999.0, 0.0)))
        return faces

    def similarity(self, a, b):
        return max(0.0, 100.0 - abs(a[0] - b[0]))


class WordsOcr:
    def detect_text(self, image):
        return {
            "TextDetections": [
                {
                    "DetectedText": "A1234",
                    "Type": "LINE",
                    "Id": 0,
                    "Confidence": 98.0,
                    "Geometry": {
                        "BoundingBox": {"Width": 0.2, "Height": 0.1, "Left": 0.1, "Top": 0.1},
                        "Polygon": [
                            {"X": 0.1, "Y": 0.1},
                            {"X": 0.3, "Y": 0.1},
                            {"X": 0.3, "Y": 0.2},
                            {"X": 0.1, "Y": 0.2},
                        ],
                    },
                },
                {
                    "DetectedText": "A1234",
                    "Type": "WORD",
                    "Id": 1,
                    "ParentId": 0,
                    "Confidence": 97.0,
                    "Geometry": {
                        "BoundingBox": {"Width": 0.2, "Height": 0.1, "Left": 0.1, "Top": 0.1},
                        "Polygon": [
                            {"X": 0.1, "Y": 0.1},
                            {"X": 0.3, "Y": 0.1},
                            {"X": 0.3, "Y": 0.2},
                            {"X": 0.1, "Y": 0.2},
                        ],
                    },
                },
            ],
            "TextModelVersion": "3.0",
        }


@pytest.fixture
def s3_objects():
    return {}


@pytest.fixture
def client(s3_objects):
    service = LocalRekognition(
        WordsOcr(), ColourFaces(), lambda bucket, key, version: s3_objects[(bucket, key)]
    )
    with served(service) as client:
        yield client


@pytest.fixture
def adapter(client):
    return Rekognition(client, "snaprace-test")


def index(adapter, key, external):
    return adapter.index_faces(
        "acme", "e1", "photos", key, external_image_id=external, max_faces=15, quality_filter="AUTO"
    )


def test_index_faces_creates_the_collection_and_filters_low_quality(adapter, client, s3_objects):
    s3_objects[("photos", "a.png")] = png((200, 10, 200))  # one good face, one tiny low-quality face
    face_ids = [face.face_id for face in index(adapter, "a.png", "P1")]
    assert len(face_ids) == 1
    listed = client.list_faces(CollectionId=COLLECTION)["Faces"]
    assert [(f["FaceId"], f["ExternalImageId"]) for f in listed] == [(face_ids[0], "P1")]
    assert client.describe_collection(CollectionId=COLLECTION)["FaceCount"] == 1


def test_search_returns_matching_faces_with_similarity(adapter, client, s3_objects):
    s3_objects[("photos", "a.png")] = png((200, 10, 0))
    s3_objects[("photos", "b.png")] = png((200, 60, 0))
    index(adapter, "a.png", "P1")
    index(adapter, "b.png", "P2")
    found = adapter.search_faces_by_image("acme", "e1", png((200, 12, 0)), threshold=85, max_faces=50)
    assert [(m.external_image_id, m.similarity) for m in found.matches] == [("P1", 98.0)]
    assert found.searched.area > 0
    # Two faces: the largest is searched, and SearchedFaceBoundingBox is its box.
    two = png((200, 12, 200))
    faces = client.detect_faces(Image={"Bytes": two})["FaceDetails"]
    assert len(faces) == 2
    largest = max(faces, key=lambda face: face["BoundingBox"]["Width"] * face["BoundingBox"]["Height"])
    searched = adapter.search_faces_by_image("acme", "e1", two, threshold=85, max_faces=50).searched
    assert (searched.left, searched.top, searched.width, searched.height) == tuple(
        largest["BoundingBox"][k] for k in ("Left", "Top", "Width", "Height")
    )


def test_search_without_a_face_and_without_a_collection(adapter, s3_objects):
    with pytest.raises(CollectionNotFound):
        adapter.search_faces_by_image("acme", "nope", png((200, 1, 0)), threshold=85, max_faces=5)
    adapter.create_collection("acme", "e1")
    adapter.create_collection("acme", "e1")  # already exists: fine
    with pytest.raises(NoFaceInImage):
        adapter.search_faces_by_image("acme", "e1", png((0, 0, 0)), threshold=85, max_faces=5)


def test_detect_text_reads_s3_objects(adapter, s3_objects):
    s3_objects[("photos", "t.png")] = png((0, 0, 0))
    detections = adapter.detect_text("photos", "t.png")
    assert [(d.text, d.kind) for d in detections] == [("A1234", "LINE"), ("A1234", "WORD")]


def test_images_that_are_not_jpeg_or_png_are_refused(adapter):
    adapter.create_collection("acme", "e1")
    with pytest.raises(InvalidImage, match="InvalidImageFormatException"):
        adapter.index_face_image(
            "acme", "e1", b"GIF89a not really", external_image_id="opted-out", quality_filter="AUTO"
        )


def test_errors_use_rekognitions_codes(client):
    with pytest.raises(ClientError) as caught:
        client.describe_collection(CollectionId="missing")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        client.detect_text(Image={"S3Object": {"Bucket": "photos", "Name": "missing.jpg"}})
    assert caught.value.response["Error"]["Code"] == "InvalidS3ObjectException"


def test_delete_faces_and_collection(adapter, client, s3_objects):
    s3_objects[("photos", "a.png")] = png((200, 10, 0))
    ((face_id, _),) = [(face.face_id, face.box) for face in index(adapter, "a.png", "P1")]
    assert client.delete_faces(CollectionId=COLLECTION, FaceIds=[face_id, "unknown"])["DeletedFaces"] == [
        face_id
    ]
    client.delete_collection(CollectionId=COLLECTION)
    with pytest.raises(ClientError):
        client.list_faces(CollectionId=COLLECTION)


def test_search_faces_finds_the_other_faces_of_an_indexed_face(adapter, client, s3_objects):
    s3_objects[("photos", "a.png")] = png((200, 10, 0))
    s3_objects[("photos", "b.png")] = png((200, 12, 0))
    s3_objects[("photos", "c.png")] = png((200, 90, 0))
    (face,) = index(adapter, "a.png", "P1")
    index(adapter, "b.png", "P2")
    index(adapter, "c.png", "P3")
    assert face.box.width == pytest.approx(0.4) and face.box.top == pytest.approx(0.1)
    answer = client.search_faces(CollectionId=COLLECTION, FaceId=face.face_id, FaceMatchThreshold=85)
    assert answer["SearchedFaceId"] == face.face_id
    assert [(m["Face"]["ExternalImageId"], m["Similarity"]) for m in answer["FaceMatches"]] == [("P2", 98.0)]
    with pytest.raises(ClientError) as caught:
        client.search_faces(CollectionId=COLLECTION, FaceId="00000000-0000-0000-0000-000000000000")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
