"""Offline OCR engine standing in for Rekognition DetectText in the local sandbox.

RapidOCR 1.4.4 (PP-OCRv4 detection and recognition, PP-OCR mobile 180-degree classifier, ONNX
Runtime on the CPU). Its models ship inside the `rapidocr-onnxruntime` wheel: nothing is
downloaded. One RapidOCR per process, built on first use; calls run one at a time under a lock
(RapidOCR keeps per-call state on its detector, and ONNX Runtime already uses every core).

Pipeline for one image: decode as stored (no EXIF rotation; the pipeline's processed JPEG is
upright and carries no EXIF) → replicate a border of half the short side, at most 16 px (the
detector misses text that touches the edge: on every other crop of bib_racer_crops, tight crops
of one bib, this took bib F1 from 0.74 to 0.83) → detect on a copy scaled so its short side is
1280 px (at most 4x up, long side at most 2560) → recognise each box cut from the unscaled
pixels, with a probability and a CTC column per character. Detecting at 1280 rather than
RapidOCR's default 736 matters on photos a few hundred pixels wide: on rbnr-set1 (342-720 px) the
labelled bibs read at all, at any score, went from 85% to 98%.

Response: DetectText's shape, `{"TextDetections": [...], "TextModelVersion": "3.0"}`. One LINE per
detected box, then all WORDs; Ids 0.. over LINEs and then WORDs in that order, each WORD's
ParentId its LINE. Words are the line split on whitespace, and also where a letter and a digit
sit further apart than 1.3x the line's median character pitch (the recogniser often drops a
space: "Bib5307"); each word's box is its share of the line's box in proportion to its characters.
Geometry is fractions of the image: Polygon TL, TR, BR, BL (a rotated box for tilted text) and the
axis-aligned BoundingBox around it, clipped to [0, 1]. At most 100 WORDs, DetectText's documented
limit: the service does not say which it drops; here whole lines go, smallest text first (a photo's
biggest text is what it is about).

Confidence calibration. RapidOCR scores a line by its mean character probability p. Here a WORD's
p is the mean over its own characters, mapped by two straight lines through Confidence 90 at
p = 0.92:  p <= 0.92: 90 p / 0.92 (0.5 → 49, 0.8 → 78, 0.9 → 88);  p > 0.92: 90 + 125 (p - 0.92)
(0.96 → 95, 0.98 → 97.5, 0.99 → 98.75, 1 → 100). A LINE's Confidence is the mean of its words'.
Measured on 552 bib-like WORD reads (3-6 digits after at most one letter) of labelled bibs whose
label is known (95 inside the labelled bib boxes of rbnr-set1, 457 from bib_racer_crops with a
complete label); a read is right when it is exactly the label:

    p            reads   right   precision
    < 0.80          12       4     0.33
    0.80-0.90       37      22     0.59
    0.90-0.92       18      14     0.78
    0.92-0.96       88      81     0.92
    0.96-0.98       84      76     0.90
    0.98-0.99       82      76     0.93
    >= 0.99        231     227     0.98

So at Confidence >= 90 (p >= 0.92) 460 of 485 reads are right (94.8%; rbnr-set1 93 of 94, crops
367 of 391) and 92% of all right reads are kept; below 90 only 60% are right, and under 80 a third.
On AWS too a WORD at >= 90 is a reliable read; the app's threshold keeps that meaning. The mean
separates right from wrong reads as well as the minimum, product or geometric mean of the character
probabilities (AUC 0.80, 0.80, 0.79, 0.80): what stays wrong above 90 is mostly a digit missing
where a crop cuts the bib off or a character is hidden, or a category letter read as a digit
("S0880" as "80880"), which no character probability shows.

Cost on this 2-core machine (ONNX Runtime spreads one call over both cores): every photo is
detected at about 1920x1280 (a 720x480 photo is scaled up to it, a 2048x1365 one nearly down to
it), so a race photo takes 2.8 s of CPU on average over rbnr-set1 (3-5 s with many runners, and
the same at 2048x1365), 1.5-2 s of wall time; a 50x40 px bib crop 0.3 s of CPU. Measured while
other jobs shared the cores, so these are upper figures.

Not like the service: text more than 90 degrees from upright is only handled when upside down;
DetectText's Filters (WordFilter, RegionsOfInterest) are not applied; the recogniser's alphabet is
Chinese and Latin, and full-width characters are folded to ASCII (NFKC).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

TEXT_MODEL_VERSION = "3.0"
MAX_WORDS = 100  # DetectText's documented limit per image

# Detection runs on a copy whose short side is this long (text of race photos is small).
DET_SHORT_SIDE = 1280
DET_MAX_LONG_SIDE = 2560
DET_MAX_UPSCALE = 4.0
PAD = 0.5
PAD_MAX = 16
# RapidOCR's own floor: lines whose mean character probability is lower are noise.
MIN_LINE_SCORE = 0.5
# The mean character probability from which a word is a reliable read: Confidence 90 (docstring).
RELIABLE_SCORE = 0.92
# A letter and a digit further apart than this many times the line's median character pitch are
# two words (see _word_spans).
SPLIT_GAP = 1.3

_WORD = re.compile(r"\S+")

_lock = threading.Lock()
_rapidocr = None


class UnreadableImage(ValueError):
    """The bytes are not an image OpenCV can decode (DetectText: InvalidImageFormatException)."""


@dataclass(frozen=True)
class RawWord:
    text: str
    char_scores: tuple[float, ...]
    polygon: tuple[tuple[float, float], ...]  # 4 points in pixels: TL, TR, BR, BL


@dataclass(frozen=True)
class RawLine:
    text: str
    char_scores: tuple[float, ...]  # one per character of its words (spaces left out)
    polygon: tuple[tuple[float, float], ...]
    words: tuple[RawWord, ...]

    @property
    def height(self) -> float:
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.polygon
        return (np.hypot(x3 - x0, y3 - y0) + np.hypot(x2 - x1, y2 - y1)) / 2


def calibrated(score: float) -> float:
    """Return the 0-100 DetectText confidence for a RapidOCR mean character probability."""
    if score <= RELIABLE_SCORE:
        confidence = 90.0 * score / RELIABLE_SCORE
    else:
        confidence = 90.0 + 10.0 * (score - RELIABLE_SCORE) / (1.0 - RELIABLE_SCORE)
    return max(0.0, min(100.0, confidence))


class OcrEngine:
    """DetectText on image bytes: `detect_text(image) -> DetectText response dict`."""

    def detect_text(self, image: bytes) -> dict[str, Any]:
        """Return what Rekognition DetectText returns for `image`; raise UnreadableImage."""
        pixels = _decode(image)
        height, width = pixels.shape[:2]
        return _response(self.read(pixels), width, height)

    def read(self, pixels: np.ndarray) -> list[RawLine]:
        """Return the text lines in a BGR image with RapidOCR's raw scores, in reading order."""
        lines = (_line(*recognised) for recognised in recognise(pixels))
        return [line for line in lines if line is not None]


def recognise(pixels: np.ndarray) -> list[tuple[str, list[float], list[int], np.ndarray]]:
    """Return RapidOCR's (text, character scores, character columns, box) for each text box."""
    height, width = pixels.shape[:2]
    # A margin lets the detector find text that touches the edge (tight crops of a bib).
    pad = min(PAD_MAX, max(2, round(PAD * min(height, width))))
    padded = cv2.copyMakeBorder(pixels, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    scale = min(DET_SHORT_SIDE / min(height, width), DET_MAX_LONG_SIDE / max(height, width), DET_MAX_UPSCALE)
    det_input = padded
    if abs(scale - 1) > 0.02:
        interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        det_input = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=interpolation)
    engine = _engine()
    with _lock:  # RapidOCR keeps per-call state on its detector
        boxes, _ = engine.text_det(det_input)
        if boxes is None or len(boxes) == 0:
            return []
        boxes = engine.sorted_boxes(np.asarray(boxes, dtype=np.float32) / np.float32(scale))
        crops = engine.get_crop_img_list(padded, boxes)
        crops, _, _ = engine.text_cls(crops)
        results, _ = engine.text_rec(crops, True)
    recognised = []
    for box, (text, score, extra) in zip(boxes, results, strict=True):
        if score >= MIN_LINE_SCORE and text:
            # extra: [columns, words, columns per word, word kinds, character scores]
            columns = [column for word in extra[2] for column in word]
            recognised.append((text, list(extra[4]), columns, box - np.float32(pad)))
    return recognised


def _response(lines: list[RawLine], width: int, height: int) -> dict[str, Any]:
    """Return the DetectText response for `lines` of an image `width` x `height` pixels."""
    lines = _within_word_limit(lines)
    detections: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    for line_id, line in enumerate(lines):
        word_scores = [_word_score(word.char_scores) for word in line.words]
        detections.append(
            {
                "DetectedText": line.text,
                "Type": "LINE",
                "Id": line_id,
                "Confidence": calibrated(float(np.mean(word_scores))),
                "Geometry": _geometry(line.polygon, width, height),
            }
        )
        for word, score in zip(line.words, word_scores, strict=True):
            words.append(
                {
                    "DetectedText": word.text,
                    "Type": "WORD",
                    "Id": len(lines) + len(words),
                    "ParentId": line_id,
                    "Confidence": calibrated(score),
                    "Geometry": _geometry(word.polygon, width, height),
                }
            )
    return {"TextDetections": detections + words, "TextModelVersion": TEXT_MODEL_VERSION}


def _engine():
    """Return the process's RapidOCR, loading its models (shipped in the wheel) on first use."""
    global _rapidocr
    if _rapidocr is None:
        with _lock:
            if _rapidocr is None:
                from rapidocr_onnxruntime import RapidOCR

                # The detector gets images already scaled: its own resize only rounds to 32 px.
                _rapidocr = RapidOCR(det_limit_type="min", det_limit_side_len=32)
    return _rapidocr


def _decode(image: bytes) -> np.ndarray:
    data = np.frombuffer(image, dtype=np.uint8)
    pixels = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if pixels is None:
        raise UnreadableImage("the image cannot be decoded")
    return pixels


def _line(text: str, char_scores: list[float], char_columns: list[int], box: np.ndarray) -> RawLine | None:
    """Return a line with its words and their proportional boxes, or None if it has no text."""
    if not len(text) == len(char_scores) == len(char_columns):
        char_columns = [0] * len(text)  # no spacing known: words split on whitespace only
    chars = [
        # NFKC turns full-width digits and letters (the Chinese model's alphabet has both) into ASCII.
        (normal, score, column)
        for char, score, column in zip(text, char_scores, char_columns, strict=True)
        for normal in unicodedata.normalize("NFKC", char)
    ]
    spans = _word_spans(chars)
    if not spans:
        return None
    polygon = [np.asarray(point, dtype=float) for point in box]
    top_left, top_right, bottom_right, bottom_left = polygon
    words = []
    for start, end in spans:
        head, tail = start / len(chars), end / len(chars)
        corners = (
            top_left + (top_right - top_left) * head,
            top_left + (top_right - top_left) * tail,
            bottom_left + (bottom_right - bottom_left) * tail,
            bottom_left + (bottom_right - bottom_left) * head,
        )
        words.append(
            RawWord(
                text="".join(char for char, _, _ in chars[start:end]),
                char_scores=tuple(score for _, score, _ in chars[start:end]),
                polygon=tuple((float(x), float(y)) for x, y in corners),
            )
        )
    # The line's box spans its words: leading and trailing spaces are trimmed from both.
    first, last = words[0], words[-1]
    line_polygon = (first.polygon[0], last.polygon[1], last.polygon[2], first.polygon[3])
    line_scores = tuple(score for word in words for score in word.char_scores)
    return RawLine(" ".join(word.text for word in words), line_scores, line_polygon, tuple(words))


def _word_spans(chars: list[tuple[str, float, int]]) -> list[tuple[int, int]]:
    """Return the [start, end) character spans of the words: split on whitespace, and where a
    letter meets a digit across a gap wider than the line's usual character pitch.

    The recogniser often drops a space ("Bib5307", "RUN2024") that DetectText would have split on;
    the CTC column of each character still shows the gap.
    """
    spans = [[match.start(), match.end()] for match in _WORD.finditer("".join(char for char, _, _ in chars))]
    steps = [chars[i][2] - chars[i - 1][2] for start, end in spans for i in range(start + 1, end)]
    if len(steps) < 2:
        return [tuple(span) for span in spans]
    wide = SPLIT_GAP * float(np.median(steps))
    split = []
    for start, end in spans:
        for i in range(start + 1, end):
            before, after = chars[i - 1][0], chars[i][0]
            letter_digit_boundary = before.isdigit() != after.isdigit() and (before + after).isalnum()
            if letter_digit_boundary and chars[i][2] - chars[i - 1][2] > wide:
                split.append((start, i))
                start = i
        split.append((start, end))
    return split


def _word_score(char_scores: tuple[float, ...]) -> float:
    return float(np.mean(char_scores))


def _within_word_limit(lines: list[RawLine]) -> list[RawLine]:
    """Return whole lines, tallest first, up to DetectText's word limit, in reading order."""
    kept: set[int] = set()
    total = 0
    for index in sorted(range(len(lines)), key=lambda i: -lines[i].height):
        total += len(lines[index].words)
        if total > MAX_WORDS:
            break
        kept.add(index)
    return [line for index, line in enumerate(lines) if index in kept]


def _geometry(polygon: tuple[tuple[float, float], ...], width: int, height: int) -> dict[str, Any]:
    points = [(_fraction(x, width), _fraction(y, height)) for x, y in polygon]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return {
        "BoundingBox": {
            "Width": max(xs) - min(xs),
            "Height": max(ys) - min(ys),
            "Left": min(xs),
            "Top": min(ys),
        },
        "Polygon": [{"X": x, "Y": y} for x, y in points],
    }


def _fraction(value: float, size: int) -> float:
    return min(1.0, max(0.0, float(value) / size))
