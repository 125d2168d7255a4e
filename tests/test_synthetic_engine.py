"""The synthetic engines read the bib and person drawn into generated photos, after the pipeline's
own re-encode, and see nothing in photos without a code."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.config import Settings
from chalicelib.domain import imaging
from chalicelib.domain.bibs import bibs_from_detections
from sandbox.engines.synthetic import (
    PHOTO_SIZE,
    Code,
    SyntheticFaces,
    SyntheticOcr,
    UndecodableImage,
    UnencodableValue,
    embedding,
    read_code,
    synthetic_photo,
)
from sandbox.rekognition_service import LocalRekognition
from tests.support.workflow import jpeg_bytes

PIPELINE = Settings(table_name="t", state_machine_name="m")


def processed(photo: bytes) -> bytes:
    """The copy the pipeline stores and sends to Rekognition (decoded, re-encoded JPEG q90)."""
    return imaging.process_image(
        photo,
        max_width=PIPELINE.max_width,
        jpeg_quality=PIPELINE.jpeg_quality,
        max_pixels=PIPELINE.max_image_pixels,
    ).jpeg


def resized(photo: bytes, width: int) -> bytes:
    image = Image.open(io.BytesIO(photo))
    image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("bib", "person"),
    [("1234", 7), ("0567", 0), ("999999", 999999), ("100", 42), ("12", None), (None, 31)],
)
def test_the_code_survives_the_pipelines_reencode(bib, person):
    code = read_code(processed(synthetic_photo(bib, person)))
    assert code is not None and (code.bib, code.person) == (bib, person)


def test_the_code_survives_more_generations_and_a_resize():
    photo = synthetic_photo("4321", 12)
    for _ in range(3):
        photo = processed(photo)
    code = read_code(resized(photo, 1024))
    assert code is not None and (code.bib, code.person) == ("4321", 12)


def test_generated_photos_are_photo_sized():
    photo = synthetic_photo("1234", 1)
    assert Image.open(io.BytesIO(photo)).size == PHOTO_SIZE
    assert 150_000 < len(photo) < 1_500_000  # bytes per megapixel of a real photo, not of a flat image


def test_detect_text_reads_the_bib_as_a_word_the_bib_rules_accept():
    response = SyntheticOcr().detect_text(processed(synthetic_photo("0567", 3)))
    line, word = response["TextDetections"]
    assert (line["Type"], word["Type"], word["ParentId"]) == ("LINE", "WORD", line["Id"])
    assert word["DetectedText"] == "0567" and word["Confidence"] == 99.0
    box = word["Geometry"]["BoundingBox"]
    assert 0 < box["Left"] < box["Left"] + box["Width"] < 0.5 and 0 < box["Top"] < 0.1


def test_the_apps_adapter_and_bib_rules_read_it_through_the_service():
    service = LocalRekognition(
        SyntheticOcr(), SyntheticFaces(), lambda *_: processed(synthetic_photo("0567", 3))
    )
    adapter = Rekognition(_InProcessClient(service), "snaprace-test")
    assert bibs_from_detections(adapter.detect_text("photos", "a.jpg"), PIPELINE.bib_rules) == ["0567"]


def test_one_face_per_person_same_person_matches_others_do_not():
    faces = SyntheticFaces()
    (first,) = faces.detect(processed(synthetic_photo("1001", 5)))
    (again,) = faces.detect(processed(synthetic_photo("1002", 5)))
    (other,) = faces.detect(processed(synthetic_photo("1003", 6)))
    assert first.quality == 3 and first.confidence > 99
    assert faces.similarity(first.embedding, again.embedding) >= 99
    assert faces.similarity(first.embedding, other.embedding) < 50


def test_no_two_of_three_hundred_people_look_alike():
    faces = SyntheticFaces()
    people = [embedding(person) for person in range(300)]
    assert max(faces.similarity(a, b) for i, a in enumerate(people) for b in people[i + 1 :]) == 0


def start_squares_only() -> bytes:
    image = Image.new("RGB", PHOTO_SIZE, (120, 80, 40))
    cell = image.width / 64
    image.paste((250, 250, 250), (round(cell), round(cell), round(cell * 2), round(cell * 2)))
    image.paste((0, 0, 0), (round(cell * 2), round(cell), round(cell * 3), round(cell * 2)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "photo",
    [
        pytest.param(jpeg_bytes((1600, 1067)), id="a flat photo"),
        pytest.param(jpeg_bytes((60, 40)), id="a thumbnail"),
        pytest.param(jpeg_bytes((640, 480), (250, 0, 0)), id="a red photo"),
        pytest.param(start_squares_only(), id="the start squares then texture"),
    ],
)
def test_photos_without_a_code_show_no_text_and_no_face(photo):
    assert read_code(photo) is None
    assert SyntheticOcr().detect_text(photo)["TextDetections"] == []
    assert SyntheticFaces().detect(photo) == []


def test_a_code_with_a_wrong_check_square_is_no_code():
    image = Image.open(io.BytesIO(synthetic_photo("1234", 7))).convert("RGB")
    cell = image.width / 64
    # Squares: white, black, 4 (digits), 1, 2, ...: the fifth square, one cell in, becomes a 1.
    image.paste((42, 42, 42), (round(cell * 5), round(cell), round(cell * 6), round(cell * 2)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    assert read_code(buffer.getvalue()) is None


def test_a_photo_with_no_bib_and_no_person_is_an_empty_code():
    assert read_code(synthetic_photo(None, None)) == Code(bib=None, person=None, bib_box=None)


def test_bytes_that_are_no_image_raise_a_value_error():
    with pytest.raises(UndecodableImage):
        SyntheticOcr().detect_text(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match="cannot decode"):
        SyntheticFaces().detect(b"\x89PNG\r\n\x1a\n broken")


@pytest.mark.parametrize(
    ("bib", "person"), [("A123", 1), ("1234567", 1), ("", 1), ("123", -1), ("123", 10**6)]
)
def test_values_the_code_cannot_carry_are_refused(bib, person):
    with pytest.raises(UnencodableValue):
        synthetic_photo(bib, person)


class _InProcessClient:
    """Just enough of a boto3 Rekognition client to call the service without HTTP."""

    def __init__(self, service: LocalRekognition) -> None:
        self._service = service

    def detect_text(self, **params):
        return self._service.handle("DetectText", params)
