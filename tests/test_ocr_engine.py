"""The offline OCR engine answers exactly as Rekognition DetectText does (sandbox/engines/ocr.py)."""

from __future__ import annotations

import io

import boto3
import pytest
from botocore.stub import Stubber
from PIL import Image, ImageDraw, ImageFont

from sandbox.engines.ocr import (
    OcrEngine,
    RawLine,
    UnreadableImage,
    _line,
    _within_word_limit,
    calibrated,
)

# Small images keep each engine call well under a second of CPU.
NUMBER = "4821"


def jpeg(size, *texts):
    """Return a white JPEG with each (text, (x, y), font size) drawn in black."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for text, position, font_size in texts:
        draw.text(position, text, fill="black", font=ImageFont.load_default(size=font_size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def engine():
    return OcrEngine()


@pytest.fixture(scope="module")
def number_response(engine):
    # The number drawn in the middle of a 320x160 image: x 0.25-0.6, y 0.25-0.6 roughly.
    return engine.detect_text(jpeg((320, 160), (NUMBER, (80, 40), 50)))


@pytest.fixture(scope="module")
def two_lines_response(engine):
    return engine.detect_text(jpeg((360, 200), ("FINISH", (30, 20), 36), ("Bib 5307", (30, 100), 48)))


def words_of(response):
    return [d for d in response["TextDetections"] if d["Type"] == "WORD"]


def lines_of(response):
    return [d for d in response["TextDetections"] if d["Type"] == "LINE"]


def test_response_is_what_the_rekognition_service_model_allows(two_lines_response):
    # The Stubber validates a response against botocore's DetectText output shape.
    client = boto3.client(
        "rekognition", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response("detect_text", two_lines_response)
        answered = client.detect_text(Image={"Bytes": b"jpeg"})
    answered.pop("ResponseMetadata", None)
    assert answered == two_lines_response
    assert two_lines_response["TextModelVersion"] == "3.0"


def test_reads_a_big_clear_number_as_a_confident_word(number_response):
    (word,) = [d for d in words_of(number_response) if d["DetectedText"] == NUMBER]
    assert word["Confidence"] >= 90


def test_boxes_are_fractions_of_the_image(number_response, two_lines_response):
    for detection in number_response["TextDetections"] + two_lines_response["TextDetections"]:
        box = detection["Geometry"]["BoundingBox"]
        assert all(0.0 <= box[k] <= 1.0 for k in ("Left", "Top", "Width", "Height"))
        assert box["Left"] + box["Width"] <= 1.0 + 1e-9 and box["Top"] + box["Height"] <= 1.0 + 1e-9
        assert len(detection["Geometry"]["Polygon"]) == 4
        for point in detection["Geometry"]["Polygon"]:
            assert box["Left"] - 1e-9 <= point["X"] <= box["Left"] + box["Width"] + 1e-9
            assert box["Top"] - 1e-9 <= point["Y"] <= box["Top"] + box["Height"] + 1e-9


def test_the_box_is_where_the_text_is(number_response):
    (word,) = [d for d in words_of(number_response) if d["DetectedText"] == NUMBER]
    box = word["Geometry"]["BoundingBox"]
    centre_x, centre_y = box["Left"] + box["Width"] / 2, box["Top"] + box["Height"] / 2
    assert 0.3 < centre_x < 0.6 and 0.3 < centre_y < 0.6
    assert 0.1 < box["Height"] < 0.5


def test_lines_come_first_and_words_point_at_their_line(two_lines_response):
    detections = two_lines_response["TextDetections"]
    kinds = [d["Type"] for d in detections]
    assert kinds == sorted(kinds, key=["LINE", "WORD"].index)
    assert [d["Id"] for d in detections] == list(range(len(detections)))
    lines = {d["Id"]: d for d in lines_of(two_lines_response)}
    assert all("ParentId" not in line for line in lines.values())
    for line_id, line in lines.items():
        children = [w["DetectedText"] for w in words_of(two_lines_response) if w["ParentId"] == line_id]
        assert " ".join(children) == line["DetectedText"]
    assert {w["ParentId"] for w in words_of(two_lines_response)} == set(lines)
    assert "5307" in [w["DetectedText"] for w in words_of(two_lines_response)]


def test_an_image_without_text_has_no_detections(engine):
    assert engine.detect_text(jpeg((200, 120))) == {"TextDetections": [], "TextModelVersion": "3.0"}


@pytest.mark.parametrize("data", [b"", b"not an image at all"])
def test_bytes_that_are_no_image_are_refused(engine, data):
    with pytest.raises(UnreadableImage):
        engine.detect_text(data)


# --- internals with literal inputs --------------------------------------------------------


def test_a_line_splits_into_words_with_boxes_in_proportion_to_their_characters():
    box = [(0, 10), (90, 10), (90, 40), (0, 40)]
    line = _line(" 12 3456 ", [0.9] * 9, list(range(0, 27, 3)), box)
    assert line.text == "12 3456" and [w.text for w in line.words] == ["12", "3456"]
    first, second = line.words
    assert first.polygon == ((10.0, 10.0), (30.0, 10.0), (30.0, 40.0), (10.0, 40.0))
    assert second.polygon == ((40.0, 10.0), (80.0, 10.0), (80.0, 40.0), (40.0, 40.0))
    assert line.polygon == ((10.0, 10.0), (80.0, 10.0), (80.0, 40.0), (10.0, 40.0))


BOX = [(0, 0), (70, 0), (70, 10), (0, 10)]


def test_a_letter_and_a_digit_far_apart_are_two_words():
    # "RUN2024" as the recogniser returned it: the gap N -> 2 is 7 columns, the pitch 5.
    line = _line("RUN2024", [0.9] * 7, [2, 7, 12, 19, 23, 28, 32], BOX)
    assert [w.text for w in line.words] == ["RUN", "2024"] and line.text == "RUN 2024"


@pytest.mark.parametrize(
    ("text", "columns"),
    [("S0374", [2, 6, 10, 14, 18]), ("2024", [2, 9, 12, 16]), ("AB12", [2, 5, 8, 11])],
)
def test_evenly_spaced_characters_and_digit_runs_stay_one_word(text, columns):
    assert [w.text for w in _line(text, [0.9] * len(text), columns, BOX).words] == [text]


def test_full_width_characters_become_ascii():
    line = _line("１２３４", [0.9] * 4, [1, 4, 7, 10], [(0, 0), (40, 0), (40, 10), (0, 10)])
    assert line.text == "1234"


def test_blank_text_is_no_line():
    assert _line("   ", [0.9] * 3, [1, 4, 7], [(0, 0), (40, 0), (40, 10), (0, 10)]) is None


def test_word_limit_drops_the_smallest_lines_whole():
    def line(height, words):
        text = " ".join(["w"] * words)
        box = [(0, 0), (100, 0), (100, height), (0, height)]
        return _line(text, [0.9] * len(text), list(range(len(text))), box)

    lines = [line(10, 40), line(5, 30), line(20, 50), line(30, 20)]
    # Tallest first: 20 + 50 words fit, the next 40 would pass 100, so it and all smaller go.
    assert _within_word_limit(lines) == [lines[2], lines[3]]
    assert _within_word_limit(lines[2:]) == lines[2:]


def test_confidence_is_between_0_and_100_and_rises_with_the_score():
    confidences = [calibrated(score) for score in (0.0, 0.5, 0.9, 0.99, 1.0)]
    assert all(0.0 <= c <= 100.0 for c in confidences)
    assert confidences == sorted(confidences) and confidences[0] < confidences[-1]


def test_raw_lines_carry_one_score_per_character():
    line = _line("A 12", [0.5, 0.6, 0.7, 0.8], [1, 4, 7, 10], [(0, 0), (40, 0), (40, 10), (0, 10)])
    assert isinstance(line, RawLine)
    assert line.char_scores == (0.5, 0.7, 0.8)
    assert [w.char_scores for w in line.words] == [(0.5,), (0.7, 0.8)]
